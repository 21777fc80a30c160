import Darwin
import Foundation
import UIKit

enum DeviceInfo {
    /// "iPhone16,1 iOS 17.5" (the hardware identifier, not the marketing name).
    @MainActor
    static var summary: String {
        var info = utsname()
        uname(&info)
        let machine = withUnsafeBytes(of: &info.machine) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        return "\(machine) \(UIDevice.current.systemName) \(UIDevice.current.systemVersion)"
    }

    /// The process's memory footprint in KiB (what Xcode's memory gauge shows), nil if unavailable.
    static func footprintKB() -> Int? {
        var info = task_vm_info_data_t()
        var count = mach_msg_type_number_t(MemoryLayout<task_vm_info_data_t>.size / MemoryLayout<integer_t>.size)
        let result = withUnsafeMutablePointer(to: &info) { pointer in
            pointer.withMemoryRebound(to: integer_t.self, capacity: Int(count)) {
                task_info(mach_task_self_, task_flavor_t(TASK_VM_INFO), $0, &count)
            }
        }
        guard result == KERN_SUCCESS else { return nil }
        return Int(info.phys_footprint / 1024)
    }
}
