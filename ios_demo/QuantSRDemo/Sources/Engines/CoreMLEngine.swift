import CoreML
import Foundation
import QuantSRCore

/// A quantsr `.mlpackage` (fp32 tensor I/O "lr" -> "sr", fixed input side) through Core ML. The only file
/// importing CoreML; calls are limited to the API in shared/docs/APPS.md plus the MLMultiArray buffer accessors
/// (checked by ci/check_swift.py).
final class CoreMLEngine: UpscaleEngine {
    private let model: MLModel
    private let inputName: String
    private let outputName: String

    private init(model: MLModel, inputName: String, outputName: String) {
        self.model = model
        self.inputName = inputName
        self.outputName = outputName
    }

    static func load(packageURL: URL, cacheKey: String, computeUnits: ComputeUnitsChoice, inputName: String,
                     outputName: String) async throws -> CoreMLEngine {
        let compiled = try await compiledModel(packageURL, cacheKey: cacheKey)
        let configuration = MLModelConfiguration()
        configuration.computeUnits = computeUnits == .cpuOnly ? .cpuOnly : .all
        let model = try MLModel(contentsOf: compiled, configuration: configuration)
        return CoreMLEngine(model: model, inputName: inputName, outputName: outputName)
    }

    /// The `.mlpackage` is shipped as is (a folder reference) and compiled on first use; the `.mlmodelc` is kept
    /// in Caches under `cacheKey` (the manifest's sha256), so a new model file gets compiled again.
    private static func compiledModel(_ packageURL: URL, cacheKey: String) async throws -> URL {
        if packageURL.pathExtension == "mlmodelc" { return packageURL }
        let files = FileManager.default
        let cache = try files.url(for: .cachesDirectory, in: .userDomainMask, appropriateFor: nil, create: true)
            .appendingPathComponent("CompiledModels", isDirectory: true)
        let safeKey = String(cacheKey.map { $0.isLetter || $0.isNumber ? $0 : "_" }.prefix(64))
        let target = cache.appendingPathComponent("\(packageURL.deletingPathExtension().lastPathComponent)-\(safeKey).mlmodelc")
        if files.fileExists(atPath: target.path) { return target }
        let temporary = try await MLModel.compileModel(at: packageURL)
        try files.createDirectory(at: cache, withIntermediateDirectories: true)
        try? files.removeItem(at: target)
        try files.moveItem(at: temporary, to: target)
        return target
    }

    func run(_ input: PlanarTensor) throws -> PlanarTensor {
        let array = try MLMultiArray(shape: input.shape.map { NSNumber(value: $0) }, dataType: .float32)
        array.withUnsafeMutableBufferPointer(ofType: Float.self) { buffer, strides in
            StridedCopy.scatter(input.data, into: buffer, shape: input.shape, strides: strides)
        }
        let features = try MLDictionaryFeatureProvider(dictionary: [inputName: MLFeatureValue(multiArray: array)])
        let prediction = try model.prediction(from: features)
        guard let output = prediction.featureValue(for: outputName)?.multiArrayValue else {
            throw EngineError.missingOutput(outputName)
        }
        guard output.dataType == .float32 else {
            throw EngineError.unsupportedOutputType(String(describing: output.dataType))
        }
        let shape = output.shape.map { $0.intValue }
        let strides = output.strides.map { $0.intValue }
        let data = output.withUnsafeBufferPointer(ofType: Float.self) { buffer in
            StridedCopy.contiguous(buffer, shape: shape, strides: strides)
        }
        return PlanarTensor(shape: shape, data: data)
    }
}
