import ExecuTorch
import QuantSRCore

/// A quantsr `.pte` through the ExecuTorch runtime (XNNPACK delegate; the app links backend_xnnpack,
/// kernels_optimized and kernels_quantized with -all_load so they register). The only file importing ExecuTorch;
/// it uses only the API listed in shared/docs/APPS.md (checked by ci/check_swift.py; signatures read from
/// extension/apple/ExecuTorch/Exported in the executorch repository: Module(filePath:loadMode:), load(_:),
/// forward(_:), Tensor<T>(_:shape:), Tensor(ValueSequenceConstructible) init from [Value], shape, scalars()).
final class ExecuTorchEngine: UpscaleEngine {
    private let module: Module

    init(path: String) throws {
        module = Module(filePath: path, loadMode: .mmap)
        try module.load("forward")
    }

    func run(_ input: PlanarTensor) throws -> PlanarTensor {
        let tensor = Tensor<Float>(input.data, shape: input.shape)
        let output = try Tensor<Float>(module.forward(tensor))  // the single output "sr"
        return PlanarTensor(shape: output.shape, data: output.scalars())
    }
}
