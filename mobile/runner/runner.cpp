// quantsr_runner: load a quantsr ExecuTorch .pte (XNNPACK), run "forward" on a raw float32 NCHW input,
// time it and write the output. Desktop stand-in for the on-device runner: it uses the same ExecuTorch C++
// runtime (Module, MmapDataLoader, XNNPACK delegate, CPU kernels) an Android/iOS app links, here taken from
// the installed executorch wheel (headers in executorch/include, shared libraries in executorch/lib).
//
//   quantsr_runner MODEL.pte --input IN.bin --output OUT.bin [--shape 1,3,H,W] [--iterations N]
//                  [--warmup K] [--threads T] [--json STATS.json] [--load-mode mmap|file] [--quiet] [--verbose]
//
// Exit codes: 0 ok, 2 bad command line, 3 missing/unreadable file, 4 model load failed,
// 5 wrong input (size/shape/dtype), 6 execution failed, 7 could not write an output file.

#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor_ptr.h>
#include <executorch/runtime/backend/interface.h>
#include <executorch/runtime/core/error.h>
#include <executorch/runtime/platform/platform.h>
#include <executorch/runtime/platform/runtime.h>

#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

// The wheel ships libexecutorch_threadpool.so but not extension/threadpool/threadpool.h (it includes
// pthreadpool.h, which is not shipped either). Declare the two exported member functions used here; only
// pointers to the singleton are handled, never an object, so the missing data members do not matter.
namespace executorch::extension::threadpool {
class ThreadPool final {
 public:
  size_t get_thread_count() const;
  bool _unsafe_reset_threadpool(uint32_t num_threads);
};
ThreadPool* get_threadpool();
}  // namespace executorch::extension::threadpool

namespace {

using executorch::extension::Module;
using executorch::extension::TensorPtr;
using executorch::runtime::Error;
using executorch::runtime::EValue;
using executorch::runtime::MethodMeta;
using executorch::runtime::Tag;
using executorch::runtime::TensorInfo;
using executorch::aten::ScalarType;

constexpr int kExitUsage = 2;
constexpr int kExitMissingFile = 3;
constexpr int kExitLoad = 4;
constexpr int kExitInput = 5;
constexpr int kExitExecute = 6;
constexpr int kExitWrite = 7;

const char* kMethod = "forward";

struct Args {
  std::string model;
  std::string input;
  std::string output;
  std::string json;
  std::vector<int64_t> shape;  // empty: take it from the method's input metadata
  int iterations = 10;
  int warmup = 1;
  int threads = 0;  // 0: leave the ExecuTorch thread pool at its default
  bool mmap = true;
  bool quiet = false;
  bool verbose = false;
};

// ExecuTorch logs through its platform layer (PAL). The default one prints every Info line (cpuinfo probing
// on each start); keep errors (missing operator, delegate init failures, ...) and show the rest with --verbose.
bool g_verbose_log = false;

void emit_log(et_timestamp_t timestamp, et_pal_log_level_t level, const char* filename, const char* function,
              size_t line, const char* message, size_t length) {
  if (!g_verbose_log && (level == kInfo || level == kDebug)) return;
  (void)timestamp;
  (void)function;
  std::fprintf(stderr, "[executorch %c %s:%zu] %.*s%s", static_cast<char>(level), filename ? filename : "?", line,
               static_cast<int>(length), message,
               (length > 0 && message[length - 1] == '\n') ? "" : "\n");
}

[[noreturn]] void fail(int code, const std::string& msg) {
  std::cerr << "quantsr_runner: error: " << msg << std::endl;
  std::exit(code);
}

void usage(std::ostream& os) {
  os << "usage: quantsr_runner MODEL.pte --input IN.bin --output OUT.bin [--shape 1,3,H,W]\n"
        "                      [--iterations N] [--warmup K] [--threads T] [--json STATS.json]\n"
        "                      [--load-mode mmap|file] [--quiet] [--verbose]\n"
        "  IN.bin / OUT.bin: raw little-endian float32, NCHW, contiguous.\n"
        "  --shape       input shape (default: the static shape stored in the .pte)\n"
        "  --iterations  timed runs of method 'forward' (default 10)\n"
        "  --warmup      untimed runs before timing (default 1)\n"
        "  --threads     ExecuTorch/XNNPACK thread pool size (default: runtime default)\n"
        "  --json        write load time, latency percentiles (ms), peak RSS (MB), shapes as JSON\n"
        "  --quiet       print nothing on success; --verbose: show ExecuTorch's info log lines\n";
}

std::string err_name(Error e) {
  std::ostringstream s;
  s << executorch::runtime::to_string(e) << " (0x" << std::hex << static_cast<int>(e) << ")";
  return s.str();
}

template <typename T>
std::string shape_str(const std::vector<T>& shape) {
  std::ostringstream s;
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? "x" : "") << shape[i];
  return shape.empty() ? std::string("()") : s.str();
}

template <typename T>
std::string json_list(const std::vector<T>& v) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < v.size(); ++i) s << (i ? ", " : "") << v[i];
  s << "]";
  return s.str();
}

std::string json_escape(const std::string& in) {
  std::ostringstream s;
  for (unsigned char c : in) {
    switch (c) {
      case '"': s << "\\\""; break;
      case '\\': s << "\\\\"; break;
      case '\n': s << "\\n"; break;
      case '\t': s << "\\t"; break;
      default:
        if (c < 0x20) {
          s << "\\u" << std::hex << std::setw(4) << std::setfill('0') << int(c) << std::dec;
        } else {
          s << c;
        }
    }
  }
  return s.str();
}

int parse_int(const std::string& flag, const std::string& value, int min_value) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || errno != 0 || v < min_value || v > 1000000000L) {
    fail(kExitUsage, flag + " expects an integer >= " + std::to_string(min_value) + ", got '" + value + "'");
  }
  return static_cast<int>(v);
}

std::vector<int64_t> parse_shape(const std::string& value) {
  std::vector<int64_t> shape;
  std::stringstream ss(value);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v <= 0 || v > (1LL << 31)) {
      fail(kExitUsage, "--shape expects positive comma-separated integers like 1,3,64,64, got '" + value + "'");
    }
    shape.push_back(v);
  }
  if (shape.empty()) fail(kExitUsage, "--shape is empty");
  return shape;
}

Args parse_args(int argc, char** argv) {
  Args a;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const std::string& flag) -> std::string {
      if (i + 1 >= argc) fail(kExitUsage, flag + " needs a value");
      return argv[++i];
    };
    if (arg == "-h" || arg == "--help") {
      usage(std::cout);
      std::exit(0);
    } else if (arg == "--input" || arg == "-i") {
      a.input = value(arg);
    } else if (arg == "--output" || arg == "-o") {
      a.output = value(arg);
    } else if (arg == "--json") {
      a.json = value(arg);
    } else if (arg == "--shape") {
      a.shape = parse_shape(value(arg));
    } else if (arg == "--iterations" || arg == "-n") {
      a.iterations = parse_int(arg, value(arg), 1);
    } else if (arg == "--warmup") {
      a.warmup = parse_int(arg, value(arg), 0);
    } else if (arg == "--threads") {
      a.threads = parse_int(arg, value(arg), 0);
    } else if (arg == "--load-mode") {
      std::string m = value(arg);
      if (m != "mmap" && m != "file") fail(kExitUsage, "--load-mode must be mmap or file, got '" + m + "'");
      a.mmap = (m == "mmap");
    } else if (arg == "--quiet" || arg == "-q") {
      a.quiet = true;
    } else if (arg == "--verbose" || arg == "-v") {
      a.verbose = true;
    } else if (!arg.empty() && arg[0] == '-') {
      usage(std::cerr);
      fail(kExitUsage, "unknown option '" + arg + "'");
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 1) {
    usage(std::cerr);
    fail(kExitUsage, positional.empty() ? "no MODEL.pte given" : "expected one MODEL.pte, got several");
  }
  a.model = positional[0];
  if (a.input.empty()) fail(kExitUsage, "--input IN.bin is required");
  if (a.output.empty()) fail(kExitUsage, "--output OUT.bin is required");
  return a;
}

// Existence and readability checks up front, so "no such file" is not reported as a model load error.
void require_readable_file(const std::string& path, const char* what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    fail(kExitMissingFile, std::string(what) + " '" + path + "' not found: " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) fail(kExitMissingFile, std::string(what) + " '" + path + "' is not a regular file");
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(kExitMissingFile, std::string(what) + " '" + path + "' cannot be opened: " + std::strerror(errno));
}

std::vector<float> read_floats(const std::string& path, size_t expected_numel, const std::string& shape_desc) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) fail(kExitMissingFile, "cannot open input '" + path + "'");
  const std::streamoff bytes = f.tellg();
  const std::streamoff want = static_cast<std::streamoff>(expected_numel * sizeof(float));
  if (bytes != want) {
    std::ostringstream s;
    s << "wrong input size: '" << path << "' has " << bytes << " bytes, but shape " << shape_desc << " needs "
      << want << " bytes (" << expected_numel << " float32 values)";
    if (bytes % sizeof(float) == 0) s << "; the file holds " << bytes / sizeof(float) << " float32 values";
    s << ". Pass the input's real shape with --shape N,C,H,W";
    fail(kExitInput, s.str());
  }
  std::vector<float> data(expected_numel);
  f.seekg(0);
  if (!f.read(reinterpret_cast<char*>(data.data()), want)) fail(kExitMissingFile, "cannot read input '" + path + "'");
  return data;
}

double percentile(std::vector<double> sorted, double q) {  // linear interpolation (numpy's default)
  if (sorted.empty()) return 0.0;
  const double pos = q / 100.0 * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - static_cast<double>(lo));
}

// getrusage(RUSAGE_SELF).ru_maxrss, in MB (Linux reports kilobytes). Caveat: Linux keeps this high-water mark
// in the process's signal struct across exec, so when the runner is started by a large parent (Python's
// subprocess uses vfork), it reports the parent's peak, e.g. ~460 MB under pytest for a 9 MB run.
double ru_maxrss_mb() {
  struct rusage ru {};
  if (getrusage(RUSAGE_SELF, &ru) != 0) return -1.0;
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

// VmHWM from /proc/self/status: the peak resident set of this process's own address space (reset by exec),
// so it measures the runner alone whoever started it. Falls back to ru_maxrss where /proc is missing.
double peak_rss_mb(const char** source) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      const long long kb = std::atoll(line.c_str() + 6);
      if (kb > 0) {
        *source = "VmHWM";
        return static_cast<double>(kb) / 1024.0;
      }
    }
  }
  *source = "ru_maxrss";
  return ru_maxrss_mb();
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse_args(argc, argv);
  require_readable_file(args.model, "model");
  require_readable_file(args.input, "input");

  g_verbose_log = args.verbose;
  executorch::runtime::register_pal(executorch::runtime::PalImpl::create(emit_log, __FILE__));
  executorch::runtime::runtime_init();
  if (args.threads > 0) {
    auto* pool = executorch::extension::threadpool::get_threadpool();
    if (pool == nullptr || !pool->_unsafe_reset_threadpool(static_cast<uint32_t>(args.threads))) {
      fail(kExitUsage, "could not set the thread pool to " + std::to_string(args.threads) + " threads");
    }
  }

  // ---- load the program (mmap) and the method ----
  const auto t_load = std::chrono::steady_clock::now();
  Module module(args.model, args.mmap ? Module::LoadMode::Mmap : Module::LoadMode::File);
  Error err = module.load();
  if (err != Error::Ok) {
    fail(kExitLoad, "failed to load '" + args.model + "' as an ExecuTorch program: " + err_name(err) +
                        (err == Error::InvalidProgram || err == Error::InvalidArgument || err == Error::NotSupported
                             ? " (not a .pte file, truncated, or written by an incompatible ExecuTorch version)"
                             : ""));
  }
  auto meta_result = module.method_meta(kMethod);
  if (!meta_result.ok()) {
    std::string names;
    auto names_result = module.method_names();
    if (names_result.ok()) {
      for (const auto& n : names_result.get()) names += (names.empty() ? "" : ", ") + n;
    }
    fail(kExitLoad, "'" + args.model + "' has no method '" + kMethod + "' (" + err_name(meta_result.error()) +
                        "); methods: " + (names.empty() ? "none" : names));
  }
  const MethodMeta meta = meta_result.get();
  std::vector<std::string> backends;
  for (size_t i = 0; i < meta.num_backends(); ++i) {
    auto name = meta.get_backend_name(i);
    if (!name.ok()) continue;
    backends.emplace_back(name.get());
    if (executorch::runtime::get_backend_class(name.get()) == nullptr) {
      fail(kExitLoad, std::string("the model is delegated to backend '") + name.get() +
                          "', which is not registered in this runner (was its library linked with --no-as-needed?)");
    }
  }
  err = module.load_method(kMethod);
  if (err != Error::Ok) {
    fail(kExitLoad, "failed to load method '" + std::string(kMethod) + "' of '" + args.model + "': " + err_name(err) +
                        (err == Error::OperatorMissing ? " (an operator kernel is not linked into this runner)" : ""));
  }
  const double load_ms = ms_since(t_load);

  // ---- input shape: --shape, else the shape stored in the program ----
  if (meta.num_inputs() != 1) {
    fail(kExitInput, "method '" + std::string(kMethod) + "' takes " + std::to_string(meta.num_inputs()) +
                         " inputs; this runner feeds exactly one float32 tensor");
  }
  auto tag = meta.input_tag(0);
  if (!tag.ok() || tag.get() != Tag::Tensor) fail(kExitInput, "input 0 of 'forward' is not a tensor");
  auto in_info_result = meta.input_tensor_meta(0);
  if (!in_info_result.ok()) fail(kExitLoad, "cannot read input metadata: " + err_name(in_info_result.error()));
  const TensorInfo in_info = in_info_result.get();
  if (in_info.scalar_type() != ScalarType::Float) {
    fail(kExitInput, "input 0 has dtype code " + std::to_string(static_cast<int>(in_info.scalar_type())) +
                         ", this runner only feeds float32");
  }
  std::vector<int64_t> program_shape(in_info.sizes().begin(), in_info.sizes().end());
  std::vector<int64_t> shape = args.shape.empty() ? program_shape : args.shape;
  if (shape.size() != program_shape.size()) {
    fail(kExitInput, "--shape " + shape_str(shape) + " has " + std::to_string(shape.size()) +
                         " dims, the model's input has " + std::to_string(program_shape.size()) + " (" +
                         shape_str(program_shape) + ")");
  }
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] > program_shape[d]) {
      fail(kExitInput, "input shape " + shape_str(shape) + " exceeds the model's " +
                           (shape == program_shape ? "" : "static or upper-bound ") + "input shape " +
                           shape_str(program_shape) + " in dim " + std::to_string(d));
    }
  }
  const size_t numel = std::accumulate(shape.begin(), shape.end(), size_t{1},
                                       [](size_t a, int64_t b) { return a * static_cast<size_t>(b); });
  std::vector<float> input = read_floats(args.input, numel, shape_str(shape));
  std::vector<executorch::aten::SizesType> sizes(shape.begin(), shape.end());
  TensorPtr input_tensor = executorch::extension::make_tensor_ptr(sizes, input.data(), ScalarType::Float);
  const std::vector<EValue> inputs{EValue(*input_tensor)};

  // Feed the input once outside the timed loop: a shape the method rejects (a static input of another size,
  // or beyond a dynamic input's bounds) is an input error, not an execution failure.
  err = module.set_input(kMethod, inputs[0], 0);
  if (err != Error::Ok) {
    fail(kExitInput, "the model rejected input shape " + shape_str(shape) + ": " + err_name(err) +
                         " (its input is " + shape_str(program_shape) +
                         ", static or upper bound; pass the input's real shape with --shape)");
  }

  // ---- warmup + timed runs (each run sets the input again, as an app feeding new frames would) ----
  auto run_once = [&]() -> std::vector<EValue> {
    auto result = module.execute(kMethod, inputs);
    if (!result.ok()) {
      fail(kExitExecute, "executing '" + std::string(kMethod) + "' failed: " + err_name(result.error()) +
                             " (input shape " + shape_str(shape) + ", model input shape " +
                             shape_str(program_shape) + (shape == program_shape ? "" : ", static or upper bound") +
                             ")");
    }
    return std::move(result.get());
  };
  for (int i = 0; i < args.warmup; ++i) run_once();
  std::vector<double> times;
  times.reserve(static_cast<size_t>(args.iterations));
  std::vector<EValue> outputs;
  for (int i = 0; i < args.iterations; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    outputs = run_once();
    times.push_back(ms_since(t0));
  }

  // ---- output ----
  if (outputs.empty() || !outputs[0].isTensor()) fail(kExitExecute, "'forward' did not return a tensor");
  const auto& out = outputs[0].toTensor();
  if (out.scalar_type() != ScalarType::Float) {
    fail(kExitExecute, "output dtype code " + std::to_string(static_cast<int>(out.scalar_type())) +
                           " is not float32");
  }
  std::vector<int64_t> out_shape(out.sizes().begin(), out.sizes().end());
  {
    std::ofstream f(args.output, std::ios::binary | std::ios::trunc);
    if (!f) fail(kExitWrite, "cannot write output '" + args.output + "': " + std::strerror(errno));
    f.write(reinterpret_cast<const char*>(out.const_data_ptr<float>()),
            static_cast<std::streamsize>(out.numel() * sizeof(float)));
    if (!f) fail(kExitWrite, "failed writing output '" + args.output + "'");
  }

  // ---- stats ----
  std::vector<double> sorted = times;
  std::sort(sorted.begin(), sorted.end());
  const double mean = std::accumulate(times.begin(), times.end(), 0.0) / static_cast<double>(times.size());
  const double p50 = percentile(sorted, 50), p90 = percentile(sorted, 90), p99 = percentile(sorted, 99);
  const char* rss_source = "ru_maxrss";
  const double rss = peak_rss_mb(&rss_source);
  const double maxrss = ru_maxrss_mb();
  const auto* pool = executorch::extension::threadpool::get_threadpool();
  const size_t threads = pool ? pool->get_thread_count() : 1;

  std::ostringstream js;
  js << std::fixed << std::setprecision(4);
  js << "{\n"
     << "  \"model\": \"" << json_escape(args.model) << "\",\n"
     << "  \"method\": \"" << kMethod << "\",\n"
     << "  \"load_mode\": \"" << (args.mmap ? "mmap" : "file") << "\",\n"
     << "  \"backends\": [";
  for (size_t i = 0; i < backends.size(); ++i) js << (i ? ", " : "") << "\"" << json_escape(backends[i]) << "\"";
  js << "],\n"
     << "  \"threads\": " << threads << ",\n"
     << "  \"input_shape\": " << json_list(shape) << ",\n"
     << "  \"output_shape\": " << json_list(out_shape) << ",\n"
     << "  \"warmup\": " << args.warmup << ",\n"
     << "  \"iterations\": " << args.iterations << ",\n"
     << "  \"load_ms\": " << load_ms << ",\n"
     << "  \"latency_ms\": {\"min\": " << sorted.front() << ", \"mean\": " << mean << ", \"p50\": " << p50
     << ", \"p90\": " << p90 << ", \"p99\": " << p99 << ", \"max\": " << sorted.back() << "},\n"
     << "  \"latencies_ms\": " << json_list(times) << ",\n"
     << "  \"peak_rss_mb\": " << rss << ",\n"
     << "  \"peak_rss_source\": \"" << rss_source << "\",\n"
     << "  \"ru_maxrss_mb\": " << maxrss << "\n"
     << "}\n";

  if (!args.json.empty()) {
    std::ofstream f(args.json, std::ios::trunc);
    if (!f) fail(kExitWrite, "cannot write JSON '" + args.json + "': " + std::strerror(errno));
    f << js.str();
    if (!f) fail(kExitWrite, "failed writing JSON '" + args.json + "'");
  }
  if (!args.quiet) {
    std::cout << std::fixed << std::setprecision(3) << args.model << ": " << shape_str(shape) << " -> "
              << shape_str(out_shape) << ", " << args.iterations << " iterations (" << args.warmup
              << " warmup), " << threads << " thread(s)\n"
              << "  load " << load_ms << " ms | latency ms: min " << sorted.front() << "  mean " << mean << "  p50 "
              << p50 << "  p90 " << p90 << "  p99 " << p99 << " | peak RSS " << std::setprecision(1) << rss
              << " MB\n"
              << js.str();
  }
  return 0;
}
