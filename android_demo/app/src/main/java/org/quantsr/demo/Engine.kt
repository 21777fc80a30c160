package org.quantsr.demo

import org.pytorch.executorch.EValue
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor
import org.quantsr.demo.core.ModelEntry
import org.quantsr.demo.core.TileModel

/**
 * The only code that touches ExecuTorch: load a `.pte` (memory-mapped) and run `forward` on planar float patches.
 * Calls are synchronous: use it from one worker thread.
 */
class Engine(
    val path: String,
    val entry: ModelEntry,
    threads: Int = 0,
) : TileModel {
    private val module: Module = Module.load(path, Module.LOAD_MODE_MMAP, threads)

    init {
        module.loadMethod("forward")
    }

    override fun run(
        input: FloatArray,
        height: Int,
        width: Int,
    ): FloatArray {
        val tensor = Tensor.fromBlob(input, longArrayOf(1, 3, height.toLong(), width.toLong()))
        val outputs = module.forward(EValue.from(tensor))
        check(outputs.isNotEmpty()) { "${entry.file}: forward returned no outputs" }
        val out = outputs[0].toTensor()
        val shape = out.shape()
        val expected = longArrayOf(1, 3, height.toLong() * entry.scale, width.toLong() * entry.scale)
        check(shape.contentEquals(expected)) {
            "${entry.file}: output shape ${shape.contentToString()} for a ${height}x$width input; expected " +
                "${expected.contentToString()} (x${entry.scale}). ${module.readLogBuffer()?.joinToString(" ") ?: ""}"
        }
        return out.dataAsFloatArray
    }

    fun close() = module.destroy()
}
