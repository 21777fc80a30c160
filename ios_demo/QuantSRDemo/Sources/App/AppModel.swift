import Observation
import PhotosUI
import QuantSRCore
import SwiftUI

/// What one upscale run reports on screen.
struct RunSummary {
    let modelName: String
    let backendLabel: String
    let inputSize: String
    let outputSize: String
    let tiles: Int
    let totalMs: Double
    let loadMs: Double
    let tileStats: LatencyStats?
    let modelBytes: Int?
}

@MainActor
@Observable
final class AppModel {
    // selection
    var pickerItem: PhotosPickerItem?
    var backend: ModelBackend = .executorch
    var selectedModelID: String?
    var computeUnits: ComputeUnitsChoice = .all
    var limitInputSize = true

    // images
    private(set) var inputImage: UIImage?
    private(set) var outputImage: UIImage?
    private var inputPixels: RGBAImage?
    private var outputPixels: RGBAImage?
    private var sourcePhoto: UIImage?
    private var colorSpace: CGColorSpace?

    // state
    private(set) var isRunning = false
    private(set) var progress = 0.0
    private(set) var message: String?
    private(set) var lastRun: RunSummary?
    private(set) var store: ModelStore?
    private(set) var storeError: String?

    private let service = UpscaleService()
    @ObservationIgnored private var task: Task<Void, Never>?

    init() {
        do {
            store = try ModelStore.bundled()
        } catch {
            storeError = String(describing: error)
        }
        selectFirstModel()
    }

    var models: [ModelEntry] { store?.manifest.models(for: backend) ?? [] }
    var selectedModel: ModelEntry? { models.first { $0.id == selectedModelID } }
    var canUpscale: Bool { inputPixels != nil && selectedModel != nil && !isRunning }
    var canSave: Bool { outputPixels != nil && !isRunning }

    func selectFirstModel() {
        if selectedModel == nil { selectedModelID = models.first?.id }
    }

    func modelBytes(_ model: ModelEntry) -> Int? { store?.bytes(of: model) }

    // MARK: photo

    func loadPhoto() async {
        guard let item = pickerItem else { return }
        message = "Loading photo…"
        do {
            guard let data = try await item.loadTransferable(type: Data.self), let photo = UIImage(data: data) else {
                message = "Could not read that photo."
                return
            }
            sourcePhoto = photo
            try await preparePixels()
            message = nil
        } catch {
            message = "Could not read that photo: \(error)"
        }
    }

    /// Decode (and optionally reduce) the chosen photo off the main thread.
    func preparePixels() async throws {
        guard let photo = sourcePhoto else { return }
        let maxSide = limitInputSize ? InputLimit.defaultMaxSide : nil
        let space = ImageBridge.workingColorSpace(for: photo)
        let pixels = try await Task.detached(priority: .userInitiated) {
            try ImageBridge.pixels(of: photo, maxSide: maxSide)
        }.value
        colorSpace = space
        inputPixels = pixels
        inputImage = try ImageBridge.uiImage(from: pixels, colorSpace: space)
        outputPixels = nil
        outputImage = nil
        lastRun = nil
    }

    // MARK: upscale

    func upscale() {
        guard let pixels = inputPixels, let model = selectedModel, let store else { return }
        let url: URL
        do {
            url = try store.url(for: model)
        } catch {
            message = String(describing: error)
            return
        }
        let units = computeUnits
        let space = colorSpace
        let bytes = modelBytes(model)
        let label = model.kind == .coreml ? "\(model.kind.label), \(units.label)" : model.kind.label
        isRunning = true
        progress = 0
        message = nil
        task = Task {
            defer { isRunning = false }
            do {
                let result = try await service.upscale(pixels, model: model, url: url, computeUnits: units) { done, total in
                    Task { @MainActor in self.progress = Double(done) / Double(total) }
                }
                outputPixels = result.image
                outputImage = try ImageBridge.uiImage(from: result.image, colorSpace: space)
                lastRun = RunSummary(
                    modelName: model.name, backendLabel: label,
                    inputSize: "\(pixels.width) × \(pixels.height)",
                    outputSize: "\(result.image.width) × \(result.image.height)",
                    tiles: result.tileMs.count, totalMs: result.totalMs, loadMs: result.loadMs,
                    tileStats: result.tileMs.isEmpty ? nil : LatencyStats(samples: result.tileMs), modelBytes: bytes)
            } catch is CancellationError {
                message = "Cancelled."
            } catch {
                message = "Upscaling failed: \(error)"
            }
        }
    }

    func cancel() {
        task?.cancel()
    }

    // MARK: save

    func save() {
        guard let pixels = outputPixels else { return }
        let space = colorSpace
        message = "Saving…"
        Task {
            do {
                let png = try await Task.detached(priority: .userInitiated) {
                    try ImageBridge.pngData(from: pixels, colorSpace: space)
                }.value
                try await PhotoSaver.savePNG(png)
                message = "Saved to Photos (PNG)."
            } catch {
                message = "Saving failed: \(error)"
            }
        }
    }
}
