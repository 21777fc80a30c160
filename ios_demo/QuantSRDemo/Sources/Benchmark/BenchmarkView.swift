import QuantSRCore
import SwiftUI

struct BenchmarkView: View {
    @State private var runner: BenchmarkRunner

    init(options: BenchmarkOptions) {
        _runner = State(initialValue: BenchmarkRunner(options: options))
    }

    var body: some View {
        NavigationStack {
            List {
                Section("Settings") {
                    LabeledContent("Iterations", value: "\(runner.options.iterations)")
                    LabeledContent("Warm-up", value: "\(runner.options.warmup)")
                    LabeledContent("Sizes", value: runner.options.sizes.map { String($0) }.joined(separator: ", "))
                    LabeledContent("Output", value: runner.options.outputFile)
                }
                Section("Log") {
                    ForEach(Array(runner.log.enumerated()), id: \.offset) { _, line in
                        Text(line).font(.system(.footnote, design: .monospaced))
                    }
                    if !runner.finished {
                        ProgressView()
                    }
                }
            }
            .navigationTitle("QuantSR benchmark")
        }
        .task {
            await runner.run()
        }
    }
}
