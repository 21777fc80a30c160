import Foundation

/// Benchmark mode, started with launch arguments (Xcode scheme, `xcrun simctl launch`, `devicectl`):
///
///     -benchmark [-iterations N] [-warmup K] [-sizes 64,256] [-model NAME] [-backend executorch|coreml]
///     [-computeUnits cpuOnly|all] [-output FILE.json] [-exitWhenDone]
public struct BenchmarkOptions: Equatable, Sendable {
    public var iterations = 20
    public var warmup = 3
    /// Input sides for dynamic-shape models (as `quantsr bench --sizes`); fixed-shape models use their side.
    public var sizes = [64, 256]
    public var modelName: String?
    public var backend: ModelBackend?
    public var computeUnits: ComputeUnitsChoice = .all
    /// File name inside the app's Documents folder.
    public var outputFile = "benchmark_results.json"
    /// Quit the app after writing the JSON (unattended runs).
    public var exitWhenDone = false

    public init() {}

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case missingValue(String)
        case badValue(String, String)

        public var description: String {
            switch self {
            case .missingValue(let flag): return "\(flag) needs a value"
            case let .badValue(flag, value): return "bad value \"\(value)\" for \(flag)"
            }
        }
    }

    /// nil when `-benchmark` is absent (normal interactive launch). Unknown arguments (Xcode adds its own,
    /// e.g. `-NSDocumentRevisionsDebugMode YES`) are ignored.
    public static func parse(_ arguments: [String]) throws -> BenchmarkOptions? {
        guard arguments.contains("-benchmark") else { return nil }
        var options = BenchmarkOptions()
        var i = 0
        func value(_ flag: String) throws -> String {
            guard i + 1 < arguments.count else { throw ParseError.missingValue(flag) }
            i += 1
            return arguments[i]
        }
        func positive(_ flag: String, _ text: String, allowZero: Bool = false) throws -> Int {
            guard let n = Int(text), allowZero ? n >= 0 : n > 0 else { throw ParseError.badValue(flag, text) }
            return n
        }
        while i < arguments.count {
            let flag = arguments[i]
            switch flag {
            case "-iterations": options.iterations = try positive(flag, try value(flag))
            case "-warmup": options.warmup = try positive(flag, try value(flag), allowZero: true)
            case "-sizes":
                let text = try value(flag)
                let sizes = try text.split(separator: ",").map { try positive(flag, String($0)) }
                guard !sizes.isEmpty else { throw ParseError.badValue(flag, text) }
                options.sizes = sizes
            case "-model": options.modelName = try value(flag)
            case "-backend":
                let text = try value(flag)
                guard let b = ModelBackend(name: text) else { throw ParseError.badValue(flag, text) }
                options.backend = b
            case "-computeUnits":
                let text = try value(flag)
                guard let u = ComputeUnitsChoice(rawValue: text) else { throw ParseError.badValue(flag, text) }
                options.computeUnits = u
            case "-output":
                let name = try value(flag)
                guard !name.isEmpty, !name.contains("/") else { throw ParseError.badValue(flag, name) }
                options.outputFile = name
            case "-exitWhenDone": options.exitWhenDone = true
            default: break
            }
            i += 1
        }
        return options
    }
}

/// Core ML compute units offered by the app (mapped to `MLComputeUnits` in the app target).
public enum ComputeUnitsChoice: String, Codable, CaseIterable, Sendable, Identifiable {
    case cpuOnly
    case all

    public var id: String { rawValue }
    public var label: String { self == .cpuOnly ? "CPU only" : "All (CPU, GPU, ANE)" }
}

/// One row of the benchmark JSON: the fields of a `quantsr bench --json` row (`variant`, `input`, `median_ms`,
/// `megapixels_per_s`, `bytes`, `gzip_bytes`, `ideal_bytes`, `set5_psnr`, `rss_mb`, `samples_ms`), rounded as
/// quantsr rounds them, plus `backend`, `compute_units`, `device`, `warmup` and the latency statistics.
/// Unknown values are written as null, as quantsr writes them.
public struct BenchmarkRow: Codable, Equatable, Sendable {
    public var variant: String
    public var input: String
    public var medianMs: Double
    public var megapixelsPerS: Double
    public var bytes: Int?
    public var gzipBytes: Int?
    public var idealBytes: Int?
    public var set5PSNR: Double?
    public var rssMB: Double?
    public var samplesMs: [Double]
    public var backend: String?
    public var computeUnits: String?
    public var device: String?
    public var warmup: Int?
    public var stats: LatencyStats?

    enum CodingKeys: String, CodingKey {
        case variant, input, bytes, backend, device, warmup, stats
        case medianMs = "median_ms", megapixelsPerS = "megapixels_per_s", gzipBytes = "gzip_bytes"
        case idealBytes = "ideal_bytes", set5PSNR = "set5_psnr", rssMB = "rss_mb", samplesMs = "samples_ms"
        case computeUnits = "compute_units"
    }

    /// `median_ms` = `round(statistics.median(samples), 2)`, `megapixels_per_s` rounded to 3 decimals,
    /// `rss_mb` = `round(rssKB / 1024, 1)`, `samples_ms` rounded to 2 decimals (as `quantsr.bench.desktop.bench`).
    public init(variant: String, side: Int, scale: Int, samplesMs: [Double], bytes: Int?, rssKB: Int? = nil,
                backend: ModelBackend? = nil, computeUnits: ComputeUnitsChoice? = nil, device: String? = nil,
                warmup: Int? = nil, withStats: Bool = false) {
        let median = LatencyStats.median(samplesMs)
        self.variant = variant
        self.input = "\(side)x\(side)"
        self.medianMs = LatencyStats.pythonRound(median, 2)
        self.megapixelsPerS = LatencyStats.pythonRound(
            LatencyStats.megapixelsPerSecond(side: side, scale: scale, ms: median), 3)
        self.bytes = bytes
        self.gzipBytes = nil
        self.idealBytes = nil
        self.set5PSNR = nil
        self.rssMB = rssKB.map { LatencyStats.pythonRound(Double($0) / 1024, 1) }
        self.samplesMs = samplesMs.map { LatencyStats.pythonRound($0, 2) }
        self.backend = backend?.rawValue
        self.computeUnits = computeUnits?.rawValue
        self.device = device
        self.warmup = warmup
        self.stats = withStats ? LatencyStats(samples: samplesMs) : nil
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(variant, forKey: .variant)
        try c.encode(input, forKey: .input)
        try c.encode(medianMs, forKey: .medianMs)
        try c.encode(megapixelsPerS, forKey: .megapixelsPerS)
        try c.encode(bytes, forKey: .bytes)              // Optional: null when unknown
        try c.encode(gzipBytes, forKey: .gzipBytes)
        try c.encode(idealBytes, forKey: .idealBytes)
        try c.encode(set5PSNR, forKey: .set5PSNR)
        try c.encode(rssMB, forKey: .rssMB)
        try c.encode(samplesMs, forKey: .samplesMs)
        try c.encodeIfPresent(backend, forKey: .backend)
        try c.encodeIfPresent(computeUnits, forKey: .computeUnits)
        try c.encodeIfPresent(device, forKey: .device)
        try c.encodeIfPresent(warmup, forKey: .warmup)
        try c.encodeIfPresent(stats, forKey: .stats)
    }

    /// The rows as a pretty-printed JSON array (what `quantsr bench --json` writes), keys sorted.
    public static func encode(_ rows: [BenchmarkRow]) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(rows)
    }
}

/// Deterministic pseudo-random input in [0, 1) (a 64-bit LCG), so every run and device times the same tensor.
public enum SyntheticInput {
    public static func tensor(side: Int, seed: UInt64 = 0) -> PlanarTensor {
        var state = seed &+ 0x9E37_79B9_7F4A_7C15
        let n = 3 * side * side
        var data = [Float](repeating: 0, count: n)
        for i in 0..<n {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            data[i] = Float(state >> 40) / Float(1 << 24)
        }
        return PlanarTensor(shape: [1, 3, side, side], data: data)
    }
}
