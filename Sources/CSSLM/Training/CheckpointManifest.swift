// The MANIFEST of a checkpoint folder: every file's name, byte size and SHA-256, written last.
// A folder whose MANIFEST is missing, unreadable, or disagrees with any file is not a checkpoint;
// verification says which file and how (missing, truncated, corrupted), so resume can explain
// why it skipped a folder.
import Foundation

/// One file of a checkpoint as the MANIFEST records it.
public struct ManifestEntry: Codable, Equatable, Sendable {
    public var name: String
    public var bytes: Int
    public var sha256: String
}

/// The MANIFEST file (JSON).
public struct CheckpointManifest: Codable, Equatable, Sendable {
    public static let fileName = "MANIFEST"
    public static let formatName = "csslm-checkpoint"

    public var format: String
    public var version: Int
    public var step: Int
    public var files: [ManifestEntry]

    public init(step: Int, files: [ManifestEntry]) {
        format = Self.formatName
        version = TrainingState.currentFormatVersion
        self.step = step
        self.files = files
    }

    /// Why a folder is not a complete checkpoint.
    public struct Failure: Error, CustomStringConvertible, Equatable {
        /// The folder's name, e.g. "step-40".
        public let checkpoint: String
        /// The file at fault, when one is.
        public let file: String?
        public let reason: String
        public var description: String { "\(checkpoint): \(file.map { "\($0): " } ?? "")\(reason)" }
    }

    /// Reads `dir/MANIFEST` and checks every listed file's size and SHA-256, and that each of
    /// `required` is listed. Returns the manifest and the verified bytes of the files in `keep`
    /// (the caller parses those bytes, so what it uses is exactly what was checked).
    public static func verify(_ dir: URL, required: [String], keep: Set<String> = [])
        throws -> (manifest: CheckpointManifest, data: [String: Data]) {
        let name = dir.lastPathComponent
        func failure(_ file: String?, _ reason: String) -> Failure { Failure(checkpoint: name, file: file, reason: reason) }
        let manifestURL = dir.appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: manifestURL.path) else {
            throw failure(nil, "no \(fileName): the save did not finish (half-written)")
        }
        let manifestData: Data
        do { manifestData = try Data(contentsOf: manifestURL) } catch {
            throw failure(fileName, "cannot read (\(fileErrorReason(error)))")
        }
        guard let manifest = try? JSONDecoder().decode(CheckpointManifest.self, from: manifestData),
              manifest.format == formatName else {
            throw failure(fileName, "not a valid csslm manifest (truncated or corrupted)")
        }
        guard manifest.version <= TrainingState.currentFormatVersion else {
            throw failure(fileName, "format version \(manifest.version) is newer than this csslm reads (\(TrainingState.currentFormatVersion))")
        }
        let listed = Set(manifest.files.map(\.name))
        if let absent = required.first(where: { !listed.contains($0) }) {
            throw failure(fileName, "does not list \(absent)")
        }
        var kept: [String: Data] = [:]
        for entry in manifest.files {
            // Names are plain file names inside the folder, never paths.
            guard !entry.name.isEmpty, !entry.name.contains("/"), entry.name != "..", entry.name != "." else {
                throw failure(fileName, "lists an invalid file name '\(entry.name)'")
            }
            let url = dir.appendingPathComponent(entry.name)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
                throw failure(entry.name, "missing")
            }
            guard !isDirectory.boolValue else { throw failure(entry.name, "is a folder, not a file") }
            let size: Int
            do {
                size = (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? NSNumber)?.intValue ?? -1
            } catch {
                throw failure(entry.name, "cannot read (\(fileErrorReason(error)))")
            }
            guard size == entry.bytes else {
                throw failure(entry.name, "\(size) bytes, MANIFEST says \(entry.bytes) (truncated or half-written)")
            }
            let digest: SHA256.Digest
            do {
                if keep.contains(entry.name) {
                    let data = try Data(contentsOf: url)
                    guard data.count == entry.bytes else {
                        throw failure(entry.name, "\(data.count) bytes read, MANIFEST says \(entry.bytes) (changed while reading)")
                    }
                    digest = SHA256.hash(data)
                    kept[entry.name] = data
                } else {
                    digest = try SHA256.hash(fileAt: url)
                }
            } catch let f as Failure {
                throw f
            } catch {
                throw failure(entry.name, "cannot read (\(fileErrorReason(error)))")
            }
            guard digest.hex == entry.sha256.lowercased() else {
                throw failure(entry.name, "SHA-256 \(digest.hex.prefix(12))… differs from the MANIFEST's \(entry.sha256.prefix(12))… (corrupted)")
            }
        }
        return (manifest, kept)
    }

    /// The entry of a file just written: its size and SHA-256, read back from disk.
    static func entry(for url: URL) throws -> ManifestEntry {
        let size = (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? NSNumber)?.intValue ?? 0
        return ManifestEntry(name: url.lastPathComponent, bytes: size, sha256: try SHA256.hash(fileAt: url).hex)
    }
}
