// The one way csslm replaces a file so that readers see the old file or the whole new one, never
// a part, also after a power loss: a temporary file in the same folder, write, fsync, rename over
// the target, fsync of the folder. Every file that must not be seen half-written (checkpoints,
// model folders, result.json, the corpus index, reports, experiment tables) goes through it.
import Foundation

/// A failed step of an atomic write; the target is left as it was.
public struct AtomicWriteError: Error, CustomStringConvertible {
    /// The file that was to be written.
    public var file: String
    /// "open <temporary>", "write", "fsync", "rename" or "fsync folder".
    public var step: String
    /// strerror of the failure.
    public var reason: String

    public var description: String { "\(file): cannot write (\(step): \(reason))" }
}

/// Writes `data` to `url` atomically (see the file's head).
public func writeAtomically(_ data: Data, to url: URL) throws {
    try data.withUnsafeBytes { try writeAtomically($0, to: url) }
}

/// Writes `bytes` to `url` atomically: temporary `.<name>.tmp-<pid>` beside it, fsync, rename, fsync folder.
public func writeAtomically(_ bytes: UnsafeRawBufferPointer, to url: URL) throws {
    let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
    func failure(_ step: String) -> AtomicWriteError {
        AtomicWriteError(file: url.path, step: step, reason: String(cString: strerror(errno)))
    }
    let fd = open(temporary.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw failure("open \(temporary.path)") }
    var written = 0
    while written < bytes.count {
        let n = write(fd, bytes.baseAddress! + written, bytes.count - written)
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else {
            let error = failure("write")
            close(fd); unlink(temporary.path)
            throw error
        }
        written += n
    }
    guard fsync(fd) == 0 else {
        let error = failure("fsync")
        close(fd); unlink(temporary.path)
        throw error
    }
    close(fd)
    try moveIntoPlace(temporary, url)
}

/// Renames the finished (fsynced) file `temporary` over `url` in the same folder, then fsyncs the
/// folder so the rename itself survives a power loss.
public func moveIntoPlace(_ temporary: URL, _ url: URL) throws {
    guard rename(temporary.path, url.path) == 0 else {
        let error = AtomicWriteError(file: url.path, step: "rename", reason: String(cString: strerror(errno)))
        unlink(temporary.path)
        throw error
    }
    try fsyncFolder(url.deletingLastPathComponent())
}

/// fsync on a folder, so the renames inside it survive a power loss.
public func fsyncFolder(_ url: URL) throws {
    let fd = open(url.path, O_RDONLY | O_DIRECTORY)
    guard fd >= 0 else { throw CSSLMError("\(url.path): cannot open folder for fsync (\(String(cString: strerror(errno))))") }
    defer { close(fd) }
    guard fsync(fd) == 0 else { throw CSSLMError("\(url.path): fsync failed (\(String(cString: strerror(errno))))") }
}
