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
