// The WordPiece vocabulary: `vocab.txt` read line by line (line i is token id i), and two
// open-addressing hash tables over raw UTF-8 bytes for the greedy longest-match search: one for
// the pieces that start a word, one for the pieces that continue it (stored without "##").
// Looking a piece up hashes a byte range in place: no String is made per lookup.
import Foundation

/// The tokens of `vocab.txt`, by id, with fast lookup of UTF-8 byte ranges.
public struct WordPieceVocabulary: Sendable {
    /// Token strings by id.
    public let tokens: [String]
    /// Pieces that start a word (every token, as HF looks the first piece up as is).
    let wordStart: PieceTable
    /// Pieces that continue a word, keyed without the continuation prefix.
    let continuation: PieceTable

    /// Reads `vocab.txt`: one token a line; lines end with "\n", "\r\n" or "\r" (Python's universal
    /// newlines, as HF reads it); nothing else is stripped. At most `InputLimits.maxVocabularySize`
    /// tokens of at most `InputLimits.maxTokenBytes` bytes each.
    public init(contentsOf url: URL, continuingSubwordPrefix: String = "##") throws {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw TokenizerError.missingFile(path: url.path)
        }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw TokenizerError.unreadableFile(path: url.path, reason: error.localizedDescription)
        }
        var tokens: [String] = []
        var lineOf: [String: Int] = [:]
        let bytes = [UInt8](data)
        var start = 0, i = 0
        func endLine(_ end: Int) throws {
            let line = tokens.count + 1
            guard line <= InputLimits.maxVocabularySize else {
                throw TokenizerError.limitExceeded(path: url.path, line: line, reason:
                    "more than \(InputLimits.maxVocabularySize) tokens (the vocabulary size limit)")
            }
            guard end - start <= InputLimits.maxTokenBytes else {
                throw TokenizerError.limitExceeded(path: url.path, line: line, reason:
                    "the token is \(end - start) bytes, above the limit of \(InputLimits.maxTokenBytes)")
            }
            guard let token = String(validating: bytes[start..<end], as: UTF8.self) else {
                throw TokenizerError.invalidUTF8(path: url.path, line: line)
            }
            if let first = lineOf[token] {
                throw TokenizerError.duplicateToken(path: url.path, line: line, token: token, firstLine: first)
            }
            lineOf[token] = line
            tokens.append(token)
        }
        while i < bytes.count {
            let b = bytes[i]
            if b == 0x0A || b == 0x0D {
                try endLine(i)
                i += (b == 0x0D && i + 1 < bytes.count && bytes[i + 1] == 0x0A) ? 2 : 1
                start = i
            } else {
                i += 1
            }
        }
        if start < bytes.count { try endLine(bytes.count) }
        guard !tokens.isEmpty else { throw TokenizerError.emptyVocabulary(path: url.path) }
        self.init(tokens: tokens, continuingSubwordPrefix: continuingSubwordPrefix)
    }

    /// A vocabulary from token strings in id order (no duplicates expected; the last one wins).
    public init(tokens: [String], continuingSubwordPrefix: String = "##") {
        self.tokens = tokens
        var starts = PieceTable.Builder(capacity: tokens.count)
        var continues = PieceTable.Builder(capacity: tokens.count / 4)
        let prefix = Array(continuingSubwordPrefix.utf8)
        for (id, token) in tokens.enumerated() {
            let utf8 = Array(token.utf8)
            starts.insert(utf8[...], id: Int32(id))
            if !prefix.isEmpty, utf8.count > prefix.count, utf8.starts(with: prefix) {
                continues.insert(utf8[prefix.count...], id: Int32(id))
            }
        }
        wordStart = starts.build()
        continuation = continues.build()
    }

    public var count: Int { tokens.count }

    /// The id of a whole token, if it is in the vocabulary.
    public func id(of token: String) -> Int32? {
        var t = token
        let id = t.withUTF8 { utf8 in wordStart.withLookup { $0.find(utf8.baseAddress, utf8.count) } }
        return id >= 0 ? id : nil
    }
}

/// An immutable hash set of byte strings with an Int32 value each: open addressing, linear
/// probing, power-of-two capacity at most half full.
struct PieceTable: Sendable {
    struct Slot: Sendable {
        var hash: UInt32 = 0
        var length: Int32 = -1      // -1: empty slot
        var offset: Int32 = 0       // into `bytes`
        var id: Int32 = -1
    }
    let slots: [Slot]
    let bytes: [UInt8]
    /// The longest key, in bytes: no search needs to try longer ranges.
    let maxKeyLength: Int

    /// 8 bytes a step, then the SplitMix64 finaliser so the low bits (the slot) depend on all.
    @inline(__always)
    static func hash(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt64 {
        let raw = UnsafeRawPointer(p)
        var h = UInt64(truncatingIfNeeded: n) &* 0x9E37_79B9_7F4A_7C15
        var i = 0
        while i + 8 <= n {
            h = (h ^ raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0xBF58_476D_1CE4_E5B9
            h = (h << 31) | (h >> 33)
            i += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < n {
            tail |= UInt64(p[i]) << shift
            shift += 8
            i += 1
        }
        return CounterRandom.mix(h ^ tail)
    }

    /// `a[0..<n] == b[0..<n]`, for short keys without a libc call.
    @inline(__always)
    static func equal(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ n: Int) -> Bool {
        var i = 0
        while i + 8 <= n {
            if UnsafeRawPointer(a).loadUnaligned(fromByteOffset: i, as: UInt64.self)
                != UnsafeRawPointer(b).loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
            i += 8
        }
        while i < n {
            if a[i] != b[i] { return false }
            i += 1
        }
        return true
    }

    struct Builder {
        private var keys: [(key: ArraySlice<UInt8>, id: Int32)] = []
        init(capacity: Int) { keys.reserveCapacity(capacity) }
        mutating func insert(_ key: ArraySlice<UInt8>, id: Int32) { keys.append((key, id)) }

        func build() -> PieceTable {
            var capacity = 16
            while capacity < 2 * keys.count { capacity *= 2 }
            var slots = [Slot](repeating: Slot(), count: capacity)
            var bytes: [UInt8] = []
            var maxLength = 0
            for (key, id) in keys {
                let h = key.withUnsafeBufferPointer { PieceTable.hash($0.baseAddress!, $0.count) }
                var s = Int(truncatingIfNeeded: h) & (capacity - 1)
                while slots[s].length >= 0 {
                    let old = slots[s]
                    if old.length == Int32(key.count),
                       bytes[Int(old.offset)..<Int(old.offset) + key.count].elementsEqual(key) {
                        break  // same key again: the later id wins, as in a Python dict
                    }
                    s = (s + 1) & (capacity - 1)
                }
                if slots[s].length < 0 {
                    slots[s] = Slot(hash: UInt32(truncatingIfNeeded: h), length: Int32(key.count),
                                    offset: Int32(bytes.count), id: id)
                    bytes.append(contentsOf: key)
                } else {
                    slots[s].id = id
                }
                maxLength = max(maxLength, key.count)
            }
            return PieceTable(slots: slots, bytes: bytes, maxKeyLength: maxLength)
        }
    }

    /// Unsafe views for a run of lookups; valid only inside `withLookup`.
    struct Lookup {
        let slots: UnsafeBufferPointer<Slot>
        let bytes: UnsafePointer<UInt8>?
        let maxKeyLength: Int

        /// The id of the key `p[0..<n]`, or -1.
        @inline(__always)
        func find(_ p: UnsafePointer<UInt8>?, _ n: Int) -> Int32 {
            guard let p, n > 0 else { return -1 }
            let h = PieceTable.hash(p, n)
            let h32 = UInt32(truncatingIfNeeded: h)
            let mask = slots.count - 1
            var s = Int(truncatingIfNeeded: h) & mask
            while true {
                let slot = slots[s]
                if slot.length < 0 { return -1 }
                if slot.hash == h32, Int(slot.length) == n,
                   PieceTable.equal(bytes! + Int(slot.offset), p, n) {
                    return slot.id
                }
                s = (s + 1) & mask
            }
        }
    }

    func withLookup<R>(_ body: (Lookup) throws -> R) rethrows -> R {
        try slots.withUnsafeBufferPointer { s in
            try bytes.withUnsafeBufferPointer { b in
                try body(Lookup(slots: s, bytes: b.baseAddress, maxKeyLength: maxKeyLength))
            }
        }
    }
}
