// A model folder, dataset or checkpoint from elsewhere is data, never code: no file name read from
// inside one may reach outside its folder. Today no reader takes a path from file contents (the
// tokenizer ignores tokenizer_config.json's `vocab_file`, `tokenizer_file` and the like and always
// reads the fixed names in the model folder); a reader that needs one, such as a checkpoint
// manifest listing its files, resolves it here.
import Foundation

/// The URL of `name` inside `folder`, where `name` came from inside a file (`source`, for the
/// message). `name` must be a relative path of plain components: an empty name, an absolute path,
/// an empty, `.` or `..` component, a NUL byte, or an existing symbolic link that leads outside
/// `folder` is an error naming `source` and the name.
///
/// ```swift
/// let weights = try containedFile("model.safetensors", in: checkpointDir, source: manifest.path)
/// ```
public func containedFile(_ name: String, in folder: URL, source: String) throws -> URL {
    func refuse(_ why: String) -> CSSLMError {
        CSSLMError("\(source): file name \(String(reflecting: name)) \(why)",
                   hint: "files named inside a model or checkpoint folder must stay inside that folder")
    }
    if name.isEmpty { throw refuse("is empty") }
    if name.utf8.contains(0) { throw refuse("contains a NUL byte") }
    if name.hasPrefix("/") { throw refuse("is an absolute path") }
    for part in name.split(separator: "/", omittingEmptySubsequences: false) {
        if part.isEmpty || part == "." || part == ".." { throw refuse("has an empty, '.' or '..' component") }
    }
    let url = folder.appendingPathComponent(name)
    let root = realPath(folder.path)
    let resolved = realPath(url.path)
    guard resolved.hasPrefix(root.hasSuffix("/") ? root : root + "/") else {
        throw refuse("leads outside \(folder.path) through a symbolic link (to \(resolved))")
    }
    return url
}

/// `path` with every symbolic link resolved, as far as it exists (the missing tail appended as is).
private func realPath(_ path: String) -> String {
    if let resolved = realpath(path, nil) {
        defer { free(resolved) }
        return String(cString: resolved)
    }
    let parent = (path as NSString).deletingLastPathComponent
    guard parent != path, !parent.isEmpty else { return path }
    return (realPath(parent) as NSString).appendingPathComponent((path as NSString).lastPathComponent)
}
