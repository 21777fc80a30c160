import QuantSRCore
import SwiftUI

@main
struct QuantSRDemoApp: App {
    /// `-benchmark ...` launch arguments switch to benchmark mode (see README.md).
    private let launch: Result<BenchmarkOptions?, Error> = Result {
        try BenchmarkOptions.parse(ProcessInfo.processInfo.arguments)
    }

    var body: some Scene {
        WindowGroup {
            switch launch {
            case .success(let options?):
                BenchmarkView(options: options)
            case .success(nil):
                ContentView()
            case .failure(let error):
                Text("Bad benchmark arguments: \(String(describing: error))")
                    .padding()
            }
        }
    }
}
