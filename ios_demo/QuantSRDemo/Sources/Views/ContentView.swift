import PhotosUI
import QuantSRCore
import SwiftUI

struct ContentView: View {
    @State private var model = AppModel()

    var body: some View {
        NavigationStack {
            Form {
                photoSection
                modelSection
                runSection
                if let before = model.inputImage, let after = model.outputImage {
                    Section("Before / after") {
                        CompareView(before: before, after: after)
                    }
                }
                if let run = model.lastRun {
                    resultSection(run)
                }
            }
            .navigationTitle("QuantSR")
        }
        .onChange(of: model.pickerItem) { _, _ in
            Task { await model.loadPhoto() }
        }
        .onChange(of: model.backend) { _, _ in
            model.selectedModelID = nil
            model.selectFirstModel()
        }
        .onChange(of: model.limitInputSize) { _, _ in
            Task { try? await model.preparePixels() }
        }
    }

    private var photoSection: some View {
        Section("Photo") {
            PhotosPicker(selection: $model.pickerItem, matching: .images) {
                Label(model.inputImage == nil ? "Choose a photo" : "Choose another photo",
                      systemImage: "photo.on.rectangle")
            }
            Toggle("Reduce to \(InputLimit.defaultMaxSide) px first", isOn: $model.limitInputSize)
            if let image = model.inputImage {
                Text("Input \(Int(image.size.width)) × \(Int(image.size.height)) px")
                    .font(.footnote)
                    .foregroundStyle(.secondary)
            }
        }
    }

    private var modelSection: some View {
        Section("Model") {
            if let error = model.storeError {
                Text(error).foregroundStyle(.red)
            }
            Picker("Backend", selection: $model.backend) {
                ForEach(ModelBackend.allCases) { backend in
                    Text(backend == .executorch ? "ExecuTorch" : "Core ML").tag(backend)
                }
            }
            .pickerStyle(.segmented)
            if model.models.isEmpty {
                Text("No \(model.backend.label) models in models.json.").foregroundStyle(.secondary)
            } else {
                Picker("Model", selection: $model.selectedModelID) {
                    ForEach(model.models) { entry in
                        Text(entry.name).tag(Optional(entry.id))
                    }
                }
            }
            if model.backend == .coreml {
                Picker("Compute units", selection: $model.computeUnits) {
                    ForEach(ComputeUnitsChoice.allCases) { units in
                        Text(units.label).tag(units)
                    }
                }
            }
            if let entry = model.selectedModel {
                Text(entry.caption).font(.footnote).foregroundStyle(.secondary)
            }
        }
    }

    private var runSection: some View {
        Section {
            if model.isRunning {
                ProgressView(value: model.progress) {
                    Text("Upscaling…")
                }
                Button("Cancel", role: .cancel) { model.cancel() }
            } else {
                Button {
                    model.upscale()
                } label: {
                    Label("Upscale", systemImage: "wand.and.stars")
                }
                .disabled(!model.canUpscale)
            }
            if let message = model.message {
                Text(message).font(.footnote)
            }
        }
    }

    private func resultSection(_ run: RunSummary) -> some View {
        Section("Result") {
            LabeledContent("Model", value: run.modelName)
            LabeledContent("Backend", value: run.backendLabel)
            LabeledContent("Size", value: "\(run.inputSize) → \(run.outputSize)")
            LabeledContent("Latency", value: String(format: "%.0f ms (%ld tiles)", run.totalMs, run.tiles))
            if let stats = run.tileStats {
                LabeledContent("Per tile", value: String(format: "median %.1f ms, p90 %.1f ms", stats.median, stats.p90))
            }
            if run.loadMs > 0 {
                LabeledContent("Model load", value: String(format: "%.0f ms", run.loadMs))
            }
            if let bytes = run.modelBytes {
                LabeledContent("Model size", value: ByteFormat.string(bytes))
            }
            Button {
                model.save()
            } label: {
                Label("Save to Photos", systemImage: "square.and.arrow.down")
            }
            .disabled(!model.canSave)
        }
    }
}

#Preview {
    ContentView()
}
