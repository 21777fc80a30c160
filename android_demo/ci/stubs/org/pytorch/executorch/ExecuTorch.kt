// Compile-check stubs of org.pytorch:executorch-android 1.5.1, only what the demo calls, with the signatures
// read from the ExecuTorch sources (Module.kt, Tensor.kt: Kotlin since 1.4; EValue: Java). See
// /work/shared/docs/APPS.md. They check the demo's calls against that API, not against the released binary.
package org.pytorch.executorch

open class Module private constructor() {
    open fun forward(vararg inputs: EValue): Array<EValue> = throw UnsupportedOperationException("stub")

    open fun execute(
        methodName: String,
        vararg inputs: EValue,
    ): Array<EValue> = throw UnsupportedOperationException("stub")

    open fun loadMethod(methodName: String): Unit = throw UnsupportedOperationException("stub")

    open fun getMethods(): Array<String> = throw UnsupportedOperationException("stub")

    open fun readLogBuffer(): Array<String>? = null

    open fun destroy(): Unit = throw UnsupportedOperationException("stub")

    companion object {
        const val LOAD_MODE_FILE = 0
        const val LOAD_MODE_MMAP = 1
        const val LOAD_MODE_MMAP_USE_MLOCK = 2
        const val LOAD_MODE_MMAP_USE_MLOCK_IGNORE_ERRORS = 3

        @JvmStatic
        @JvmOverloads
        fun load(
            modelPath: String?,
            loadMode: Int = LOAD_MODE_FILE,
            numThreads: Int = 0,
        ): Module = throw UnsupportedOperationException("stub")
    }
}

abstract class Tensor internal constructor() {
    fun numel(): Long = throw UnsupportedOperationException("stub")

    fun shape(): LongArray = throw UnsupportedOperationException("stub")

    open val dataAsFloatArray: FloatArray
        get() = throw UnsupportedOperationException("stub")

    companion object {
        @JvmStatic
        fun fromBlob(
            data: FloatArray,
            shape: LongArray,
        ): Tensor = throw UnsupportedOperationException("stub")
    }
}

class EValue private constructor() {
    fun toTensor(): Tensor = throw UnsupportedOperationException("stub")

    companion object {
        @JvmStatic
        fun from(tensor: Tensor): EValue = throw UnsupportedOperationException("stub")
    }
}
