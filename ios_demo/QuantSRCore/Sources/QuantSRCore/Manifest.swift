import Foundation

/// Which runtime a model file is for.
public enum ModelBackend: String, Codable, Sendable, CaseIterable, Identifiable {
    case executorch   // `.pte`, XNNPACK-delegated (dynamic H/W, or a fixed side)
    case coreml       // `.mlpackage`, fixed input side (64 by default)

    public var id: String { rawValue }
    public var label: String { self == .executorch ? "ExecuTorch (.pte)" : "Core ML (.mlpackage)" }

    /// Accepts the names of quantsr model cards ("executorch-xnnpack", "coreml") and short forms.
    public init?(name: String) {
        let lower = name.lowercased()
        if lower.hasPrefix("executorch") || lower == "pte" || lower == "xnnpack" {
            self = .executorch
        } else if lower.hasPrefix("coreml") || lower == "core ml" || lower == "mlpackage" || lower == "mlmodelc" {
            self = .coreml
        } else {
            return nil
        }
    }

    /// From a file name's extension.
    public init?(fileName: String) {
        if fileName.hasSuffix(".pte") {
            self = .executorch
        } else if fileName.hasSuffix(".mlpackage") || fileName.hasSuffix(".mlmodelc") {
            self = .coreml
        } else {
            return nil
        }
    }
}

/// Weight / activation bit widths (`"bits": {"weights": 4, "activations": 4}`).
public struct ModelBits: Codable, Equatable, Sendable {
    public var weights: Int?
    public var activations: Int?

    public init(weights: Int? = nil, activations: Int? = nil) {
        self.weights = weights
        self.activations = activations
    }
}

/// `"input"` / `"output"` of a model card: tensor name, dtype and shape (null shape: dynamic H/W).
public struct TensorSpec: Codable, Equatable, Sendable {
    public var name: String?
    public var dtype: String?
    public var shape: [Int]?

    public init(name: String? = nil, dtype: String? = nil, shape: [Int]? = nil) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
    }
}

/// One model of `Models/models.json` (schema 1, see tests/vectors/models.json). Fields follow the model cards of
/// `quantsr export`, plus `name` for the picker and `overlap` for tiling; missing optional fields take the
/// defaults of `quantsr upscale` (tile 256, overlap 16, min side 8, tensors "lr" / "sr").
public struct ModelEntry: Codable, Equatable, Sendable, Identifiable {
    public static let defaultTile = 256
    public static let defaultOverlap = 16

    public var name: String
    /// Path relative to the Models folder: `x4_w4a4.pte`, `x4_w4a4.mlpackage` (no `..`, not absolute).
    public var file: String
    public var sha256: String?
    public var bytes: Int?
    public var scale: Int
    public var bits: ModelBits?
    /// As written in the manifest ("executorch-xnnpack", "coreml"); see `kind`.
    public var backend: String
    /// Tile core side in LR pixels (`plan_tiles`' `tile`).
    public var tile: Int
    public var overlap: Int
    public var minSide: Int
    public var maxSide: Int?
    public var input: TensorSpec?
    public var output: TensorSpec?
    public var architecture: String?
    public var quant: String?

    public var id: String { file }

    enum CodingKeys: String, CodingKey {
        case name, file, sha256, bytes, scale, bits, backend, tile, overlap, input, output, architecture, quant
        case minSide = "min_side", maxSide = "max_side"
    }

    public init(name: String, file: String, scale: Int, backend: String? = nil, tile: Int = ModelEntry.defaultTile,
                overlap: Int = ModelEntry.defaultOverlap, minSide: Int = PixelConversion.minSide,
                maxSide: Int? = nil, sha256: String? = nil, bytes: Int? = nil, bits: ModelBits? = nil,
                input: TensorSpec? = nil, output: TensorSpec? = nil) {
        self.name = name; self.file = file; self.scale = scale
        self.backend = backend ?? (ModelBackend(fileName: file) ?? .executorch).rawValue
        self.tile = tile; self.overlap = overlap; self.minSide = minSide; self.maxSide = maxSide
        self.sha256 = sha256; self.bytes = bytes; self.bits = bits; self.input = input; self.output = output
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let path = try c.decode(String.self, forKey: .file)
        file = path
        let stem = String(path.split(separator: "/").last ?? Substring(path))
        name = try c.decodeIfPresent(String.self, forKey: .name)
            ?? String(stem.split(separator: ".").first ?? Substring(stem))
        sha256 = try c.decodeIfPresent(String.self, forKey: .sha256)
        bytes = try c.decodeIfPresent(Int.self, forKey: .bytes)
        scale = try c.decode(Int.self, forKey: .scale)
        bits = try c.decodeIfPresent(ModelBits.self, forKey: .bits)
        let fallback = ModelBackend(fileName: path)?.rawValue ?? ModelBackend.executorch.rawValue
        backend = try c.decodeIfPresent(String.self, forKey: .backend) ?? fallback
        tile = try c.decodeIfPresent(Int.self, forKey: .tile) ?? ModelEntry.defaultTile
        overlap = try c.decodeIfPresent(Int.self, forKey: .overlap) ?? ModelEntry.defaultOverlap
        minSide = try c.decodeIfPresent(Int.self, forKey: .minSide) ?? PixelConversion.minSide
        maxSide = try c.decodeIfPresent(Int.self, forKey: .maxSide)
        input = try c.decodeIfPresent(TensorSpec.self, forKey: .input)
        output = try c.decodeIfPresent(TensorSpec.self, forKey: .output)
        architecture = try c.decodeIfPresent(String.self, forKey: .architecture)
        quant = try c.decodeIfPresent(String.self, forKey: .quant)
    }

    public var kind: ModelBackend { ModelBackend(name: backend) ?? ModelBackend(fileName: file) ?? .executorch }
    public var inputName: String { input?.name ?? "lr" }
    public var outputName: String { output?.name ?? "sr" }
    public var inputShape: [Int]? { input?.shape }
    public var outputShape: [Int]? { output?.shape }
    public var weightBits: Int? { bits?.weights }
    public var activationBits: Int? { bits?.activations }

    /// The fixed input side of a static-shape model (`input.shape == [1, 3, S, S]`), nil for dynamic H/W.
    public var fixedSide: Int? {
        guard let shape = inputShape, shape.count == 4 else { return nil }
        return shape[2]
    }

    /// The tiling the app runs: `tile` and `overlap` as given for dynamic-shape models (what `quantsr upscale`
    /// does); a fixed side S reads S x S windows, so the core shrinks to S - 2 x overlap (overlap at most S / 4).
    /// A dynamic model's `max_side` caps the core at max_side - 2 x overlap.
    public func tiling() -> (tile: Int, overlap: Int, fixedSide: Int?) {
        guard let side = fixedSide else {
            guard let limit = maxSide, limit - 2 * overlap >= 1 else { return (tile, overlap, nil) }
            return (min(tile, limit - 2 * overlap), overlap, nil)
        }
        let margin = min(overlap, side / 4)
        return (min(tile, TilePlanner.coreSide(fixedSide: side, overlap: margin)), margin, side)
    }

    /// "x4 · W4A4 · 1.23 MB".
    public var caption: String {
        var parts = ["x\(scale)"]
        if let w = weightBits, let a = activationBits { parts.append("W\(w)A\(a)") }
        if let b = bytes { parts.append(ByteFormat.string(b)) }
        return parts.joined(separator: " · ")
    }
}

public enum ManifestError: Error, Equatable, CustomStringConvertible {
    case invalidJSON(String)
    case missingField(String)
    case wrongType(String)
    case unsupportedSchema(Int)
    case invalidFile(String)
    case invalidValue(String, String)

    public var description: String {
        switch self {
        case .invalidJSON(let detail): return "models.json is not valid JSON (\(detail))"
        case .missingField(let key): return "models.json: missing field \"\(key)\""
        case .wrongType(let key): return "models.json: field \"\(key)\" has the wrong type"
        case .unsupportedSchema(let n):
            return "models.json: unsupported schema \(n) (this app reads schema \(ModelManifest.schema))"
        case .invalidFile(let path):
            return "models.json: invalid file \"\(path)\" (a path inside the Models folder, without ..)"
        case let .invalidValue(key, detail): return "models.json: invalid \(key): \(detail)"
        }
    }
}

/// `Models/models.json`: `{"schema": 1, "models": [ ... ]}`.
public struct ModelManifest: Codable, Equatable, Sendable {
    public static let schema = 1

    public var schema: Int
    public var models: [ModelEntry]

    public init(models: [ModelEntry]) {
        self.schema = ModelManifest.schema
        self.models = models
    }

    enum CodingKeys: String, CodingKey { case schema, models }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        schema = try c.decodeIfPresent(Int.self, forKey: .schema) ?? ModelManifest.schema
        guard schema == ModelManifest.schema else { throw ManifestError.unsupportedSchema(schema) }
        models = try c.decode([ModelEntry].self, forKey: .models)
    }

    /// Decode and validate; every failure is a `ManifestError` whose message names the offending field.
    public static func parse(_ data: Data) throws -> ModelManifest {
        let manifest: ModelManifest
        do {
            manifest = try JSONDecoder().decode(ModelManifest.self, from: data)
        } catch let error as ManifestError {
            throw error
        } catch let DecodingError.keyNotFound(key, _) {
            throw ManifestError.missingField(key.stringValue)
        } catch let DecodingError.typeMismatch(_, context) {
            throw ManifestError.wrongType(context.codingPath.last?.stringValue ?? "?")
        } catch let DecodingError.valueNotFound(_, context) {
            throw ManifestError.wrongType(context.codingPath.last?.stringValue ?? "?")
        } catch let DecodingError.dataCorrupted(context) {
            if let key = context.codingPath.last?.stringValue {
                throw ManifestError.invalidValue(key, context.debugDescription)
            }
            throw ManifestError.invalidJSON(context.debugDescription)
        } catch {
            throw ManifestError.invalidJSON("\(error)")
        }
        for m in manifest.models {
            try validate(m)
        }
        return manifest
    }

    public static func parse(_ text: String) throws -> ModelManifest {
        try parse(Data(text.utf8))
    }

    static func validate(_ m: ModelEntry) throws {
        let parts = m.file.split(separator: "/", omittingEmptySubsequences: false)
        if m.file.isEmpty || m.file.hasPrefix("/") || m.file.contains("\\")
            || parts.contains(where: { $0 == ".." || $0 == "." || $0.isEmpty }) {
            throw ManifestError.invalidFile(m.file)
        }
        if m.scale < 1 { throw ManifestError.invalidValue("scale", "\(m.scale) (must be >= 1)") }
        if m.tile < 1 { throw ManifestError.invalidValue("tile", "\(m.tile) (must be >= 1)") }
        if m.overlap < 0 { throw ManifestError.invalidValue("overlap", "\(m.overlap) (must be >= 0)") }
        if m.minSide < 1 { throw ManifestError.invalidValue("min_side", "\(m.minSide) (must be >= 1)") }
        if ModelBackend(name: m.backend) == nil {
            throw ManifestError.invalidValue("backend", "\"\(m.backend)\" (executorch-xnnpack or coreml)")
        }
        if let shape = m.inputShape, shape.count != 4 || shape[0] != 1 || shape[1] != 3 || shape[2] != shape[3] {
            throw ManifestError.invalidValue("input", "shape \(shape) (want [1, 3, S, S] or null)")
        }
    }

    public func models(for backend: ModelBackend) -> [ModelEntry] {
        models.filter { $0.kind == backend }
    }
}

public enum ByteFormat {
    /// Decimal units as Finder: 999 B, 12.3 kB, 4.56 MB.
    public static func string(_ bytes: Int) -> String {
        if bytes < 1000 { return "\(bytes) B" }
        if bytes < 1_000_000 { return String(format: "%.1f kB", Double(bytes) / 1e3) }
        return String(format: "%.2f MB", Double(bytes) / 1e6)
    }
}
