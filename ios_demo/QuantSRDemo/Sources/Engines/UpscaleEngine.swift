import Foundation
import QuantSRCore

/// One loaded model: `[1, 3, h, w]` float32 in, `[1, 3, s h, s w]` float32 out. The two implementations
/// (ExecuTorchEngine.swift, CoreMLEngine.swift) are the only files that touch ExecuTorch or Core ML.
protocol UpscaleEngine: AnyObject {
    func run(_ input: PlanarTensor) throws -> PlanarTensor
}

enum EngineError: Error, CustomStringConvertible {
    case missingOutput(String)
    case unsupportedOutputType(String)

    var description: String {
        switch self {
        case .missingOutput(let name): return "the model has no output named \"\(name)\""
        case .unsupportedOutputType(let type):
            return "the model's output is \(type), expected float32 (export with quantsr, which sets fp32 I/O)"
        }
    }
}

struct UpscaleResult: Sendable {
    let image: RGBAImage
    let loadMs: Double
    let totalMs: Double
    let tileMs: [Double]
}

/// Loads engines (cached while the same model and settings are used) and runs them off the main thread.
actor UpscaleService {
    private var engine: UpscaleEngine?
    private var engineKey: String?

    /// The engine for `model`, and the milliseconds its load took (0 when it was cached).
    private func loadEngine(for model: ModelEntry, url: URL, computeUnits: ComputeUnitsChoice) async throws
        -> (UpscaleEngine, Double) {
        let key = "\(url.path)|\(model.kind.rawValue)|\(computeUnits.rawValue)"
        if let engine, engineKey == key { return (engine, 0) }
        engine = nil
        engineKey = nil
        let watch = Stopwatch()
        let loaded: UpscaleEngine
        switch model.kind {
        case .executorch:
            loaded = try ExecuTorchEngine(path: url.path)
        case .coreml:
            loaded = try await CoreMLEngine.load(packageURL: url, cacheKey: model.sha256 ?? model.name,
                                                 computeUnits: computeUnits, inputName: model.inputName,
                                                 outputName: model.outputName)
        }
        engine = loaded
        engineKey = key
        return (loaded, watch.elapsedMs)
    }

    /// Tiled upscaling exactly as `quantsr.runtime.upscale.cpu_upscale` (tile plan, edge padding, uint8 rounding).
    func upscale(_ image: RGBAImage, model: ModelEntry, url: URL, computeUnits: ComputeUnitsChoice,
                 progress: @escaping @Sendable (Int, Int) -> Void) async throws -> UpscaleResult {
        let (runner, loadMs) = try await loadEngine(for: model, url: url, computeUnits: computeUnits)
        let tiling = model.tiling()
        let upscaler = try TiledUpscaler(scale: model.scale, tile: tiling.tile, overlap: tiling.overlap,
                                         minSide: model.minSide, fixedSide: tiling.fixedSide)
        var tileMs: [Double] = []
        let watch = Stopwatch()
        let out = try upscaler.upscale(image, progress: progress) { input in
            try Task.checkCancellation()
            let tileWatch = Stopwatch()
            let output = try runner.run(input)
            tileMs.append(tileWatch.elapsedMs)
            return output
        }
        return UpscaleResult(image: out, loadMs: loadMs, totalMs: watch.elapsedMs, tileMs: tileMs)
    }

    /// `warmup` untimed and `iterations` timed forward passes on one input; latencies in ms.
    func benchmark(model: ModelEntry, url: URL, computeUnits: ComputeUnitsChoice, input: PlanarTensor,
                   warmup: Int, iterations: Int) async throws -> [Double] {
        let (runner, _) = try await loadEngine(for: model, url: url, computeUnits: computeUnits)
        for _ in 0..<warmup {
            _ = try runner.run(input)
        }
        var samples: [Double] = []
        for _ in 0..<iterations {
            try Task.checkCancellation()
            let watch = Stopwatch()
            _ = try runner.run(input)
            samples.append(watch.elapsedMs)
        }
        return samples
    }

    func unload() {
        engine = nil
        engineKey = nil
    }
}
