import Foundation
import QuantSRCore

/// The bundled `Models/` folder (a folder reference in project.yml): `models.json` plus the `.pte` and
/// `.mlpackage` files it names.
struct ModelStore {
    enum StoreError: Error, CustomStringConvertible {
        case noModelsFolder
        case noManifest(URL)
        case missingFile(String)

        var description: String {
            switch self {
            case .noModelsFolder:
                return "No Models folder in the app bundle: put models.json and the exported models in "
                    + "ios_demo/QuantSRDemo/Models and run xcodegen generate again (see README.md)."
            case .noManifest(let url): return "No models.json in \(url.path)."
            case .missingFile(let name): return "models.json names \(name), which is not in the Models folder."
            }
        }
    }

    let folder: URL
    let manifest: ModelManifest

    static func bundled() throws -> ModelStore {
        guard let folder = Bundle.main.url(forResource: "Models", withExtension: nil) else {
            throw StoreError.noModelsFolder
        }
        let manifestURL = folder.appendingPathComponent("models.json")
        guard FileManager.default.fileExists(atPath: manifestURL.path) else { throw StoreError.noManifest(folder) }
        let manifest = try ModelManifest.parse(Data(contentsOf: manifestURL))
        return ModelStore(folder: folder, manifest: manifest)
    }

    func url(for model: ModelEntry) throws -> URL {
        let url = folder.appendingPathComponent(model.file)
        guard FileManager.default.fileExists(atPath: url.path) else { throw StoreError.missingFile(model.file) }
        return url
    }

    /// Bytes of the model file (summed over an `.mlpackage` directory); the manifest's value if unreadable.
    func bytes(of model: ModelEntry) -> Int? {
        guard let location = try? self.url(for: model) else { return model.bytes }
        return FileSize.bytes(at: location) ?? model.bytes
    }
}

enum FileSize {
    static func bytes(at url: URL) -> Int? {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else { return nil }
        if !isDirectory.boolValue {
            return (try? url.resourceValues(forKeys: [.fileSizeKey]))?.fileSize
        }
        guard let walker = FileManager.default.enumerator(at: url, includingPropertiesForKeys: [.fileSizeKey]) else {
            return nil
        }
        var total = 0
        for case let file as URL in walker {
            total += (try? file.resourceValues(forKeys: [.fileSizeKey]))?.fileSize ?? 0
        }
        return total
    }
}
