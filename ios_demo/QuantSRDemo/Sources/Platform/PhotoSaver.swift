import Foundation
import Photos

/// Saves a PNG to the photo library (add-only permission, NSPhotoLibraryAddUsageDescription in Info.plist).
enum PhotoSaver {
    enum SaveError: Error, CustomStringConvertible {
        case notAllowed

        var description: String { "QuantSR may not add photos: allow it in Settings > Privacy > Photos" }
    }

    static func savePNG(_ data: Data) async throws {
        let status = await PHPhotoLibrary.requestAuthorization(for: .addOnly)
        guard status == .authorized || status == .limited else { throw SaveError.notAllowed }
        try await PHPhotoLibrary.shared().performChanges {
            let request = PHAssetCreationRequest.forAsset()
            request.addResource(with: .photo, data: data, options: nil)
        }
    }
}
