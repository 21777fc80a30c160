import Foundation
import Observation
import QuantSRCore

/// Benchmark mode: every model of models.json (or the one named with -model) on its backend, `warmup` untimed and
/// `iterations` timed forward passes per input size, written as `quantsr bench`-style JSON rows to
/// Documents/<output> and printed to the console between BEGIN/END markers.
@MainActor
@Observable
final class BenchmarkRunner {
    private(set) var log: [String] = []
    private(set) var finished = false
    private(set) var outputURL: URL?

    private let service = UpscaleService()
    let options: BenchmarkOptions

    init(options: BenchmarkOptions) {
        self.options = options
    }

    private func say(_ line: String) {
        log.append(line)
        print("[quantsr-bench] \(line)")
    }

    func run() async {
        guard !finished, log.isEmpty else { return }
        do {
            let rows = try await measureAll()
            let data = try BenchmarkRow.encode(rows)
            let documents = try FileManager.default.url(for: .documentDirectory, in: .userDomainMask,
                                                        appropriateFor: nil, create: true)
            let url = documents.appendingPathComponent(options.outputFile)
            try data.write(to: url, options: .atomic)
            outputURL = url
            say("wrote \(rows.count) rows to \(url.path)")
            print("QUANTSR_BENCHMARK_JSON_BEGIN")
            print(String(decoding: data, as: UTF8.self))
            print("QUANTSR_BENCHMARK_JSON_END")
        } catch {
            say("benchmark failed: \(error)")
        }
        finished = true
        if options.exitWhenDone {
            exit(0)
        }
    }

    private func measureAll() async throws -> [BenchmarkRow] {
        let store = try ModelStore.bundled()
        var models = store.manifest.models
        if let name = options.modelName {
            models = models.filter { $0.name == name || $0.file == name }
        }
        if let backend = options.backend {
            models = models.filter { $0.kind == backend }
        }
        guard !models.isEmpty else {
            throw BenchmarkError.noModels(options.modelName, options.backend?.rawValue)
        }
        let device = DeviceInfo.summary
        say("device \(device); \(options.iterations) iterations after \(options.warmup) warm-up runs")
        var rows: [BenchmarkRow] = []
        for model in models {
            let url = try store.url(for: model)
            let units: ComputeUnitsChoice? = model.kind == .coreml ? options.computeUnits : nil
            let sizes = model.fixedSide.map { [$0] } ?? options.sizes
            for side in sizes {
                say("\(model.name): \(side)x\(side) …")
                let samples = try await service.benchmark(
                    model: model, url: url, computeUnits: units ?? .all,
                    input: SyntheticInput.tensor(side: side, seed: UInt64(side)),
                    warmup: options.warmup, iterations: options.iterations)
                let variantSuffix = units.map { " \($0.rawValue)" } ?? ""
                let row = BenchmarkRow(
                    variant: "\(model.name) (ios \(model.kind.rawValue)\(variantSuffix))", side: side,
                    scale: model.scale, samplesMs: samples, bytes: store.bytes(of: model),
                    rssKB: DeviceInfo.footprintKB(), backend: model.kind, computeUnits: units, device: device,
                    warmup: options.warmup, withStats: true)
                say(String(format: "%@ %@: median %.2f ms", row.variant, row.input, row.medianMs))
                rows.append(row)
            }
            await service.unload()
        }
        return rows
    }
}

enum BenchmarkError: Error, CustomStringConvertible {
    case noModels(String?, String?)

    var description: String {
        switch self {
        case let .noModels(name, backend):
            return "no model in models.json matches -model \(name ?? "(any)") -backend \(backend ?? "(any)")"
        }
    }
}
