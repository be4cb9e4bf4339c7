// The error csslm reports for bad input: what went wrong, where (file, line, field or tensor),
// and a hint saying what to do next.

/// An error with a message that names the file and place, and an optional hint.
public struct CSSLMError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public let hint: String?

    public init(_ message: String, hint: String? = nil) {
        self.message = message
        self.hint = hint
    }

    public var description: String {
        if let hint { return "\(message)\nhint: \(hint)" }
        return message
    }
}

import Foundation

/// Why a file could not be read or written, in plain words: Foundation's own text on Linux is
/// often "The operation could not be completed. (NSCocoaErrorDomain error 256.)" for a folder
/// given where a file belongs. Looks at the POSIX error under it, else at the path itself.
public func fileErrorReason(_ error: Error, path given: String? = nil) -> String {
    if let atomic = error as? AtomicWriteError { return "\(atomic.step): \(atomic.reason)" }
    let ns = error as NSError
    if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))) }
    if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
        return String(cString: strerror(Int32(underlying.code)))
    }
    if let path = given ?? (ns.userInfo[NSFilePathErrorKey] as? String) ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            if isDirectory.boolValue { return "it is a folder, not a file" }
        } else {
            return "no such file"
        }
    }
    return ns.localizedDescription
}
