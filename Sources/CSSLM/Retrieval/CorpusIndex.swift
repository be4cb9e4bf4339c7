// The corpus index file of stage 2: every document's t(d) and e(d) (in that order), its line number
// in the corpus file and its text, behind a header that says what produced it. Rank 0 writes it
// atomically (temp file, fsync, rename, fsync of the folder); readers map it and check every header
// field and a checksum of the payload before trusting a byte, and every error names the file.
//
// Layout (version 1, little-endian, each section starting on a 64-byte boundary):
//   0    8   magic "CSSLMIDX"
//   8    4   format version (1)
//   12   4   precision: 1 = float32, 2 = float16
//   16   8   H (hidden size)
//   24   8   N (documents)
//   32   8   max length in tokens the documents were truncated to
//   40   8   length of the text section in bytes
//   48   32  SHA-256 of the corpus pool (CorpusPool.digest)
//   80   32  SHA-256 of the encoder weights (encoderDigest)
//   112  8   checksum of everything after the header (payloadChecksum)
//   120  8   checksum of bytes 0..<120
//   128      vectors [N, 2H] at the precision: row d = [t(d) | e(d)]
//            line numbers [N] Int64 (1-based, in the corpus file)
//            text offsets [N + 1] UInt64 into the text section
//            text: the documents' UTF-8 bytes back to back
import Foundation
#if canImport(Glibc)
import Glibc
#endif

#if !_endian(little)
#error("the corpus index file is read in place and assumes a little-endian host")
#endif

/// What is wrong with a corpus index file; every case names the file.
public enum CorpusIndexError: Error, CustomStringConvertible, Equatable {
    case unreadable(file: String, reason: String)
    case unwritable(file: String, reason: String)
    case truncated(file: String, expectedBytes: Int, actualBytes: Int)
    case corrupt(file: String, reason: String)
    /// The index is sound but was built from another corpus, model or setting.
    case mismatch(file: String, field: String, expected: String, found: String)

    public var description: String {
        switch self {
        case let .unreadable(file, reason):
            return "\(file): cannot read the corpus index: \(reason)"
        case let .unwritable(file, reason):
            return "\(file): cannot write the corpus index: \(reason)\nhint: check that the folder exists and has free space"
        case let .truncated(file, expected, actual):
            return "\(file): corpus index truncated: \(actual) bytes, the header promises \(expected)\n"
                + "hint: the write was interrupted; delete the file and rerun stage 2 (corpus encoding)"
        case let .corrupt(file, reason):
            return "\(file): corrupt corpus index: \(reason)\nhint: delete the file and rerun stage 2 (corpus encoding)"
        case let .mismatch(file, field, expected, found):
            return "\(file): corpus index was built for another \(field): expected \(expected), found \(found)\n"
                + "hint: rerun stage 2 with the current model and corpus, or point to the matching index"
        }
    }
}

/// The header of a corpus index file.
public struct CorpusIndexHeader: Equatable, Sendable {
    public static let magic = Array("CSSLMIDX".utf8)
    public static let currentVersion = 1
    public static let size = 128

    public var version = currentVersion
    public var precision: VectorPrecision
    public var hidden: Int
    public var count: Int
    public var maxLength: Int
    public var textBytes: Int
    public var corpusDigest: SHA256Digest
    public var modelDigest: SHA256Digest

    /// Byte offsets of the sections and the file size.
    struct Layout {
        let vectors: Int, lines: Int, textOffsets: Int, text: Int, fileSize: Int
    }

    var layout: Layout {
        func align(_ x: Int) -> Int { (x + 63) & ~63 }
        let vectors = Self.size
        let lines = align(vectors + count * 2 * hidden * precision.bytesPerValue)
        let textOffsets = align(lines + 8 * count)
        let text = align(textOffsets + 8 * (count + 1))
        return Layout(vectors: vectors, lines: lines, textOffsets: textOffsets, text: text, fileSize: text + textBytes)
    }
}

/// What the caller expects an index to have been built from; nil fields are not checked.
public struct CorpusIndexExpectation: Sendable {
    public var hidden: Int?
    public var count: Int?
    public var maxLength: Int?
    public var corpusDigest: SHA256Digest?
    public var modelDigest: SHA256Digest?

    public init(hidden: Int? = nil, count: Int? = nil, maxLength: Int? = nil,
                corpusDigest: SHA256Digest? = nil, modelDigest: SHA256Digest? = nil) {
        self.hidden = hidden; self.count = count; self.maxLength = maxLength
        self.corpusDigest = corpusDigest; self.modelDigest = modelDigest
    }
}

/// A corpus index file mapped into memory, every field checked.
///
/// ```swift
/// try CorpusIndex.write(vectors, documents: pool.lines, precision: .float16, maxLength: 100,
///                       corpusDigest: pool.digest, modelDigest: encoderDigest(model), to: url)
/// let index = try CorpusIndex(contentsOf: url,
///                             expecting: CorpusIndexExpectation(corpusDigest: pool.digest, modelDigest: digest))
/// let scorer = PairHeadScorer(heads: heads, documents: index)
/// print(index.text(of: 7), index.line(of: 7))
/// ```
public final class CorpusIndex {
    public let url: URL
    public let header: CorpusIndexHeader
    private let file: MappedFile
    private let layout: CorpusIndexHeader.Layout

    public var count: Int { header.count }
    public var hidden: Int { header.hidden }
    public var precision: VectorPrecision { header.precision }

    /// Maps `url` and validates the header, the section sizes, the payload checksum and the text
    /// offsets, then the fields of `expecting`.
    public init(contentsOf url: URL, expecting: CorpusIndexExpectation = CorpusIndexExpectation()) throws {
        self.url = url
        let path = url.path
        file = try MappedFile(path: path)
        let bytes = file.bytes
        guard bytes.count >= CorpusIndexHeader.size else {
            if bytes.count >= 8 && Array(bytes[0..<8]) != CorpusIndexHeader.magic {
                throw CorpusIndexError.corrupt(file: path, reason: "not a csslm corpus index (bad magic)")
            }
            throw CorpusIndexError.truncated(file: path, expectedBytes: CorpusIndexHeader.size, actualBytes: bytes.count)
        }
        header = try Self.parseHeader(bytes, path: path)
        layout = header.layout
        if bytes.count < layout.fileSize {
            throw CorpusIndexError.truncated(file: path, expectedBytes: layout.fileSize, actualBytes: bytes.count)
        }
        if bytes.count > layout.fileSize {
            throw CorpusIndexError.corrupt(file: path, reason: "\(bytes.count - layout.fileSize) bytes after the end of the last section")
        }
        let stored = bytes.loadUnaligned(fromByteOffset: 112, as: UInt64.self).littleEndian
        let actual = payloadChecksum(UnsafeRawBufferPointer(rebasing: bytes[CorpusIndexHeader.size...]))
        guard stored == actual else {
            throw CorpusIndexError.corrupt(file: path, reason: "payload checksum \(hex64(actual)) differs from the header's \(hex64(stored))")
        }
        var previous: UInt64 = 0
        for d in 0...header.count {
            let offset = textOffset(d)
            guard offset >= previous, offset <= UInt64(header.textBytes), d > 0 || offset == 0 else {
                throw CorpusIndexError.corrupt(file: path, reason: "text offset \(offset) of document \(d) is out of order or past the text section")
            }
            previous = offset
        }
        guard textOffset(header.count) == UInt64(header.textBytes) else {
            throw CorpusIndexError.corrupt(file: path, reason: "the text offsets end at \(textOffset(header.count)), not at \(header.textBytes)")
        }
        try validate(expecting)
    }

    /// Throws `.mismatch` for the first field of `expecting` that differs from the header.
    public func validate(_ expecting: CorpusIndexExpectation) throws {
        func check<T: Equatable & CustomStringConvertible>(_ field: String, _ expected: T?, _ found: T) throws {
            if let expected, expected != found {
                throw CorpusIndexError.mismatch(file: url.path, field: field, expected: expected.description, found: found.description)
            }
        }
        try check("hidden size", expecting.hidden, header.hidden)
        try check("document count", expecting.count, header.count)
        try check("max length", expecting.maxLength, header.maxLength)
        try check("corpus (SHA-256 of the pool)", expecting.corpusDigest, header.corpusDigest)
        try check("model (SHA-256 of the encoder weights)", expecting.modelDigest, header.modelDigest)
    }

    /// The 1-based line of document `d` in the corpus file.
    public func line(of d: Int) -> Int {
        precondition((0..<count).contains(d), "document \(d) is outside 0..<\(count)")
        return Int(file.bytes.load(fromByteOffset: layout.lines + 8 * d, as: Int64.self).littleEndian)
    }

    /// The text of document `d`.
    public func text(of d: Int) -> String {
        precondition((0..<count).contains(d), "document \(d) is outside 0..<\(count)")
        let start = layout.text + Int(textOffset(d)), end = layout.text + Int(textOffset(d + 1))
        return String(decoding: UnsafeRawBufferPointer(rebasing: file.bytes[start..<end]), as: UTF8.self)
    }

    /// Every document's vectors decoded to Float.
    public func vectors() -> DocumentVectors {
        var rows = [Float](repeating: 0, count: count * 2 * hidden)
        rows.withUnsafeMutableBufferPointer { out in
            forEachDocument { d, t, e in
                (out.baseAddress! + d * 2 * hidden).update(from: t, count: hidden)
                (out.baseAddress! + d * 2 * hidden + hidden).update(from: e, count: hidden)
            }
        }
        return DocumentVectors(count: count, hidden: hidden, rows: rows)
    }

    private func textOffset(_ i: Int) -> UInt64 {
        file.bytes.load(fromByteOffset: layout.textOffsets + 8 * i, as: UInt64.self).littleEndian
    }

    private static func parseHeader(_ bytes: UnsafeRawBufferPointer, path: String) throws -> CorpusIndexHeader {
        guard Array(bytes[0..<8]) == CorpusIndexHeader.magic else {
            throw CorpusIndexError.corrupt(file: path, reason: "not a csslm corpus index (bad magic)")
        }
        func u32(_ at: Int) -> UInt32 { bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self).littleEndian }
        func u64(_ at: Int) -> UInt64 { bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self).littleEndian }
        let version = Int(u32(8))
        guard version == CorpusIndexHeader.currentVersion else {
            throw CorpusIndexError.mismatch(file: path, field: "format version", expected: String(CorpusIndexHeader.currentVersion),
                                            found: String(version))
        }
        let headerSum = payloadChecksum(UnsafeRawBufferPointer(rebasing: bytes[0..<120]))
        guard headerSum == u64(120) else {
            throw CorpusIndexError.corrupt(file: path, reason: "header checksum \(hex64(headerSum)) differs from the stored \(hex64(u64(120)))")
        }
        guard let precision = VectorPrecision(code: u32(12)) else {
            throw CorpusIndexError.corrupt(file: path, reason: "unknown precision code \(u32(12))")
        }
        // Bounds that keep every size computation far from overflow.
        let hidden = u64(16), count = u64(24), maxLength = u64(32), textBytes = u64(40)
        guard (1...(1 << 20)).contains(hidden), count <= 1 << 32, maxLength <= 1 << 20, textBytes <= 1 << 44 else {
            throw CorpusIndexError.corrupt(file: path, reason: "implausible sizes: H \(hidden), N \(count), max length \(maxLength), text \(textBytes) bytes")
        }
        return CorpusIndexHeader(version: version, precision: precision, hidden: Int(hidden), count: Int(count),
                                 maxLength: Int(maxLength), textBytes: Int(textBytes),
                                 corpusDigest: SHA256Digest(bytes: Array(bytes[48..<80])),
                                 modelDigest: SHA256Digest(bytes: Array(bytes[80..<112])))
    }

    /// Writes `vectors` with their documents (same order and count) as an index at `url`, atomically.
    public static func write(_ vectors: DocumentVectors, documents: [CorpusLine], precision: VectorPrecision,
                             maxLength: Int, corpusDigest: SHA256Digest, modelDigest: SHA256Digest, to url: URL) throws {
        precondition(documents.count == vectors.count, "\(documents.count) documents for \(vectors.count) vector rows")
        let texts = documents.map { Array($0.text.utf8) }
        let header = CorpusIndexHeader(precision: precision, hidden: vectors.hidden, count: vectors.count, maxLength: maxLength,
                                       textBytes: texts.reduce(0) { $0 + $1.count },
                                       corpusDigest: corpusDigest, modelDigest: modelDigest)
        let layout = header.layout
        var bytes = [UInt8](repeating: 0, count: layout.fileSize)
        bytes.withUnsafeMutableBytes { out in
            func put32(_ v: UInt32, _ at: Int) { out.storeBytes(of: v.littleEndian, toByteOffset: at, as: UInt32.self) }
            func put64(_ v: UInt64, _ at: Int) { out.storeBytes(of: v.littleEndian, toByteOffset: at, as: UInt64.self) }
            out.copyBytes(from: CorpusIndexHeader.magic)
            put32(UInt32(header.version), 8)
            put32(precision.code, 12)
            put64(UInt64(header.hidden), 16)
            put64(UInt64(header.count), 24)
            put64(UInt64(maxLength), 32)
            put64(UInt64(header.textBytes), 40)
            UnsafeMutableRawBufferPointer(rebasing: out[48..<80]).copyBytes(from: corpusDigest.bytes)
            UnsafeMutableRawBufferPointer(rebasing: out[80..<112]).copyBytes(from: modelDigest.bytes)
            switch precision {
            case .float32:
                vectors.rows.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: out[layout.vectors...]).copyMemory(from: $0) }
            case .float16:
                for (i, v) in vectors.rows.enumerated() {
                    out.storeBytes(of: Float16(v).bitPattern.littleEndian, toByteOffset: layout.vectors + 2 * i, as: UInt16.self)
                }
            }
            var offset: UInt64 = 0
            for (d, document) in documents.enumerated() {
                put64(UInt64(bitPattern: Int64(document.line)), layout.lines + 8 * d)
                put64(offset, layout.textOffsets + 8 * d)
                UnsafeMutableRawBufferPointer(rebasing: out[(layout.text + Int(offset))...]).copyBytes(from: texts[d])
                offset += UInt64(texts[d].count)
            }
            put64(offset, layout.textOffsets + 8 * documents.count)
            put64(payloadChecksum(UnsafeRawBufferPointer(rebasing: out[CorpusIndexHeader.size...])), 112)
            put64(payloadChecksum(UnsafeRawBufferPointer(rebasing: out[0..<120])), 120)
        }
        do { try bytes.withUnsafeBytes { try writeAtomically($0, to: url) } } catch let e as AtomicWriteError {
            throw CorpusIndexError.unwritable(file: e.file, reason: "\(e.step): \(e.reason)")
        }
    }
}

extension CorpusIndex: DocumentVectorSource {
    public func forEachDocument(_ body: (Int, UnsafePointer<Float>, UnsafePointer<Float>) throws -> Void) rethrows {
        let h = hidden, base = file.bytes.baseAddress! + layout.vectors
        switch precision {
        case .float32:
            // Sections are 64-byte aligned and the mapping is page aligned: read in place.
            let rows = base.assumingMemoryBound(to: Float.self)
            for d in 0..<count { try body(d, rows + d * 2 * h, rows + d * 2 * h + h) }
        case .float16:
            let halves = base.assumingMemoryBound(to: UInt16.self)
            var row = [Float](repeating: 0, count: 2 * h)
            try row.withUnsafeMutableBufferPointer { r in
                for d in 0..<count {
                    let src = halves + d * 2 * h
                    for i in 0..<(2 * h) { r[i] = Float(Float16(bitPattern: UInt16(littleEndian: src[i]))) }
                    try body(d, r.baseAddress!, r.baseAddress! + h)
                }
            }
        }
    }
}
