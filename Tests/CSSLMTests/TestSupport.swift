// Shared helpers for the tests: fixture and asset locations, and llm.c-style tensor comparison.
import Foundation
import XCTest
import CSSLM

enum TestPaths {
    /// The repository root (Tests/CSSLMTests/ is two levels below it).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    static func fixture(_ name: String) throws -> URL {
        let direct = root.appendingPathComponent("Tests/CSSLMTests/Fixtures/\(name)")
        if FileManager.default.fileExists(atPath: direct.path) { return direct }
        let base = (name as NSString).deletingPathExtension, ext = (name as NSString).pathExtension
        guard let url = Bundle.module.url(forResource: base, withExtension: ext, subdirectory: "Fixtures") else {
            throw CSSLMError("fixture \(name) not found", hint: "regenerate it with scripts/make_reference.py")
        }
        return url
    }

    /// The MiniLM model folder installed by scripts/setup.sh; a missing model fails the test.
    static func miniLM(file: StaticString = #filePath, line: UInt = #line) throws -> URL {
        let dir = root.appendingPathComponent("assets/models/all-MiniLM-L6-v2")
        guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("model.safetensors").path) else {
            throw CSSLMError("\(dir.path) is missing", hint: "run scripts/setup.sh first")
        }
        return dir
    }
}

/// max |a − b| / max |b|: the relative error of the parity checks (docs/design.md#reference-parity).
func maxRelativeDifference(_ a: UnsafePointer<Float>, _ b: [Float]) -> (rel: Float, abs: Float) {
    var maxDiff: Float = 0, maxRef: Float = 0
    for i in 0..<b.count {
        maxDiff = max(maxDiff, abs(a[i] - b[i]))
        maxRef = max(maxRef, abs(b[i]))
    }
    return (maxRef > 0 ? maxDiff / maxRef : maxDiff, maxDiff)
}

/// Compares and prints one line per tensor, as llm.c's test_gpt2.c does.
/// `absoluteFloor` accepts tensors whose true value is zero and whose reference is float noise.
func assertClose(_ name: String, _ ours: UnsafePointer<Float>, _ reference: [Float], tolerance: Float,
                 absoluteFloor: Float = 0, file: StaticString = #filePath, line: UInt = #line) {
    let (rel, absDiff) = maxRelativeDifference(ours, reference)
    let ok = (rel <= tolerance || absDiff <= absoluteFloor) && !rel.isNaN
    print(String(format: "%@ %-58@ max|diff| %.3e  rel %.3e", ok ? "OK " : "BAD", name as NSString, absDiff, rel))
    XCTAssert(ok, "\(name): relative difference \(rel) > \(tolerance)", file: file, line: line)
}

func assertClose(_ name: String, _ ours: [Float], _ reference: [Float], tolerance: Float,
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(ours.count, reference.count, "\(name): size", file: file, line: line)
    ours.withUnsafeBufferPointer { assertClose(name, $0.baseAddress!, reference, tolerance: tolerance, file: file, line: line) }
}

/// `body` must throw an error whose text contains every one of `parts`.
func assertThrows(_ body: () throws -> Void, containing parts: [String],
                  file: StaticString = #filePath, line: UInt = #line) {
    do {
        try body()
        XCTFail("expected an error containing \(parts)", file: file, line: line)
    } catch {
        let text = "\(error)"
        for p in parts { XCTAssertTrue(text.contains(p), "error '\(text)' lacks '\(p)'", file: file, line: line) }
    }
}
