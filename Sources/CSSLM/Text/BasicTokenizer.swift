// BERT's "basic tokenizer": raw text to normalized words, before WordPiece. It follows HF's
// Python BertTokenizer step by step, on Unicode scalars (Python code points), never on Swift
// Characters (grapheme clusters would glue a combining mark or a ZWJ emoji sequence into one):
//   0. special and added tokens are cut out of the raw text verbatim (HF's added-tokens trie);
//   1. cleaning: drop NUL, U+FFFD and every C* scalar (control, format, private use, unassigned)
//      except \t \n \r, which with Zs/Zl/Zp are whitespace; whitespace splits words;
//   2. every CJK ideograph becomes a word of its own;
//   3. per whitespace-separated word: NFC (Python does it to the whole text; it only matters when
//      accents are kept), lowercase (full mappings, Greek final sigma as Python's str.lower),
//      accent stripping (NFD, drop Mn);
//   4. punctuation (Unicode P* and the ASCII symbols 33-47, 58-64, 91-96, 123-126) splits off as
//      one-scalar words.
// ASCII, nearly all of the text, goes through byte tables; other scalars through the stdlib's
// Unicode properties, and Foundation for NFC/NFD once per word that needs it.
import Foundation

/// One normalized word: a byte range of `PreTokenized.bytes`, or a token whose id is known.
struct PreToken {
    var start: Int32
    var end: Int32
    /// >= 0: emit this id as is (a verbatim special or added token);
    /// `wordPiece`: split the bytes into word pieces; `wholeWord`: look the bytes up whole.
    var id: Int32

    static let wordPiece: Int32 = -1
    static let wholeWord: Int32 = -2
}

/// The words of a text: UTF-8 bytes of all normalized words back to back, and their ranges.
struct PreTokenized {
    var bytes: [UInt8] = []
    var words: [PreToken] = []

    mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        words.removeAll(keepingCapacity: true)
    }
}

struct BasicTokenizer: Sendable {
    let lowercase: Bool
    let stripAccents: Bool
    let cleanText: Bool
    let splitCJK: Bool
    let unicodeVersionLimit: (major: Int, minor: Int)?
    /// Tokens matched verbatim in raw text, longest first, with the id each one emits.
    let verbatim: [(bytes: [UInt8], id: Int32)]
    /// `verbatimLead[b]`: some verbatim token starts with byte b.
    let verbatimLead: [Bool]
    /// Whole words (after cleaning) kept unsplit: special tokens go to WordPiece whole,
    /// `never_split` words are looked up whole.
    let keptWhole: [(bytes: [UInt8], id: Int32)]

    init(config: WordPieceConfig, verbatimIds: [(String, Int32)]) {
        lowercase = config.lowercase
        stripAccents = config.stripsAccents
        cleanText = config.cleanText
        splitCJK = config.splitCJKCharacters
        unicodeVersionLimit = config.unicodeVersionLimit
        verbatim = verbatimIds.map { (Array($0.0.utf8), $0.1) }.sorted { $0.bytes.count > $1.bytes.count }
        var lead = [Bool](repeating: false, count: 256)
        for v in verbatim { lead[Int(v.bytes[0])] = true }
        verbatimLead = lead
        keptWhole = config.specialTokens.map { (Array($0.utf8), PreToken.wordPiece) }
            + config.neverSplit.map { (Array($0.utf8), PreToken.wholeWord) }
    }

    /// Appends the words of `text` (valid UTF-8) to `out`.
    func split(_ text: UnsafeBufferPointer<UInt8>, into out: inout PreTokenized) {
        var segmentStart = 0
        var i = 0
        let n = text.count
        var word: [UInt8] = []
        word.reserveCapacity(64)
        while i < n {
            if verbatimLead[Int(text[i])], let match = matchVerbatim(text, at: i) {
                splitSegment(text, segmentStart, i, &word, &out)
                out.words.append(PreToken(start: Int32(out.bytes.count), end: Int32(out.bytes.count), id: match.id))
                i += match.length
                segmentStart = i
            } else {
                i += 1
            }
        }
        splitSegment(text, segmentStart, n, &word, &out)
    }

    private func matchVerbatim(_ text: UnsafeBufferPointer<UInt8>, at i: Int) -> (id: Int32, length: Int)? {
        for v in verbatim where v.bytes.count <= text.count - i {
            if v.bytes.withUnsafeBufferPointer({ memcmp($0.baseAddress!, text.baseAddress! + i, $0.count) == 0 }) {
                return (v.id, v.bytes.count)
            }
        }
        return nil
    }

    /// Steps 1-4 on `text[lo..<hi]`. `word` is scratch space for the current whitespace word.
    private func splitSegment(_ text: UnsafeBufferPointer<UInt8>, _ lo: Int, _ hi: Int,
                              _ word: inout [UInt8], _ out: inout PreTokenized) {
        word.removeAll(keepingCapacity: true)
        var wordIsASCII = true
        var i = lo
        while i < hi {
            let b = text[i]
            if b < 0x80 {
                i += 1
                switch asciiClass(b, cleanText: cleanText) {
                case .keep: word.append(b)
                case .space:
                    finishWord(word, isASCII: wordIsASCII, &out)
                    word.removeAll(keepingCapacity: true)
                    wordIsASCII = true
                case .drop: break
                }
                continue
            }
            let length = utf8Length(lead: b)
            let scalar = decodeScalar(text, at: i, length: length)
            let bytes = UnsafeBufferPointer(rebasing: text[i..<i + length])
            i += length
            if cleanText && (scalar.value == 0xFFFD || isControl(scalar)) { continue }
            if isWhitespace(scalar) {
                finishWord(word, isASCII: wordIsASCII, &out)
                word.removeAll(keepingCapacity: true)
                wordIsASCII = true
            } else if splitCJK && isCJK(scalar.value) {
                finishWord(word, isASCII: wordIsASCII, &out)
                word.removeAll(keepingCapacity: true)
                wordIsASCII = true
                word.append(contentsOf: bytes)
                finishWord(word, isASCII: false, &out)
                word.removeAll(keepingCapacity: true)
            } else {
                word.append(contentsOf: bytes)
                wordIsASCII = false
            }
        }
        finishWord(word, isASCII: wordIsASCII, &out)
    }

    /// Steps 3-4 on one whitespace-separated word.
    private func finishWord(_ word: [UInt8], isASCII: Bool, _ out: inout PreTokenized) {
        if word.isEmpty { return }
        for kept in keptWhole where kept.bytes == word {
            let start = Int32(out.bytes.count)
            out.bytes.append(contentsOf: word)
            out.words.append(PreToken(start: start, end: Int32(out.bytes.count), id: kept.id))
            return
        }
        if isASCII {
            var start = out.bytes.count
            for b in word {
                if isASCIIPunctuation(b) {
                    if out.bytes.count > start {
                        out.words.append(PreToken(start: Int32(start), end: Int32(out.bytes.count), id: PreToken.wordPiece))
                    }
                    out.bytes.append(b)
                    out.words.append(PreToken(start: Int32(out.bytes.count - 1), end: Int32(out.bytes.count), id: PreToken.wordPiece))
                    start = out.bytes.count
                } else {
                    out.bytes.append(lowercase ? asciiLowercased(b) : b)
                }
            }
            if out.bytes.count > start {
                out.words.append(PreToken(start: Int32(start), end: Int32(out.bytes.count), id: PreToken.wordPiece))
            }
            return
        }
        var scalars = Array(String(decoding: word, as: UTF8.self).unicodeScalars)
        if !stripAccents, scalars.contains(where: { $0.value >= 0x300 }) {
            // Below U+0300 nothing composes or has a singleton mapping: NFC is the identity.
            scalars = Array(String(String.UnicodeScalarView(scalars)).precomposedStringWithCanonicalMapping.unicodeScalars)
        }
        if lowercase { scalars = lowercased(scalars) }
        if stripAccents, scalars.contains(where: { $0.value >= 0xC0 }) {
            // Below U+00C0 nothing decomposes: NFD is the identity.
            let decomposed = String(String.UnicodeScalarView(scalars)).decomposedStringWithCanonicalMapping
            scalars = decomposed.unicodeScalars.filter { $0.properties.generalCategory != .nonspacingMark }
        }
        var start = out.bytes.count
        for s in scalars {
            if isPunctuation(s) {
                if out.bytes.count > start {
                    out.words.append(PreToken(start: Int32(start), end: Int32(out.bytes.count), id: PreToken.wordPiece))
                }
                let puncStart = out.bytes.count
                appendUTF8(s, to: &out.bytes)
                out.words.append(PreToken(start: Int32(puncStart), end: Int32(out.bytes.count), id: PreToken.wordPiece))
                start = out.bytes.count
            } else {
                appendUTF8(s, to: &out.bytes)
            }
        }
        if out.bytes.count > start {
            out.words.append(PreToken(start: Int32(start), end: Int32(out.bytes.count), id: PreToken.wordPiece))
        }
    }

    /// Python's `str.lower()`: full lowercase mappings, and capital sigma becomes final sigma
    /// when a cased letter precedes it and none follows (case-ignorable scalars skipped).
    private func lowercased(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(s.count)
        for (i, c) in s.enumerated() {
            if c.value < 0x80 {
                out.append(Unicode.Scalar(asciiLowercased(UInt8(c.value))))
            } else if c.value == 0x3A3 {
                out.append(isFinalSigma(s, at: i) ? "\u{3C2}" : "\u{3C3}")
            } else if c.properties.changesWhenLowercased {
                out.append(contentsOf: c.properties.lowercaseMapping.unicodeScalars)
            } else {
                out.append(c)
            }
        }
        return out
    }

    private func isFinalSigma(_ s: [Unicode.Scalar], at i: Int) -> Bool {
        var j = i - 1
        while j >= 0 && s[j].properties.isCaseIgnorable { j -= 1 }
        guard j >= 0 && s[j].properties.isCased else { return false }
        j = i + 1
        while j < s.count && s[j].properties.isCaseIgnorable { j += 1 }
        return j == s.count || !s[j].properties.isCased
    }

    /// Category C* (Cc, Cf, Cs, Co, Cn), or assigned after `unicodeVersionLimit`.
    private func isControl(_ s: Unicode.Scalar) -> Bool {
        let p = s.properties
        switch p.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned: return true
        default: break
        }
        if let limit = unicodeVersionLimit, let age = p.age {
            return age.major > limit.major || (age.major == limit.major && age.minor > limit.minor)
        }
        return false
    }

    /// Zs, and the line/paragraph separators Zl/Zp that Python's `str.split()` splits on.
    /// (Non-ASCII scalars only; U+0085 is a control and never gets here when cleaning.)
    private func isWhitespace(_ s: Unicode.Scalar) -> Bool {
        if s.value == 0x85 { return true }
        switch s.properties.generalCategory {
        case .spaceSeparator, .lineSeparator, .paragraphSeparator: return true
        default: return false
        }
    }
}

/// HF's CJK ranges: the CJK Unified Ideographs blocks and extensions A-E, and the compatibility
/// ideographs. (Not Hangul, kana or CJK punctuation.)
@inline(__always)
func isCJK(_ cp: UInt32) -> Bool {
    (0x4E00...0x9FFF).contains(cp) || (0x3400...0x4DBF).contains(cp)
        || (0x20000...0x2A6DF).contains(cp) || (0x2A700...0x2B73F).contains(cp)
        || (0x2B740...0x2B81F).contains(cp) || (0x2B820...0x2CEAF).contains(cp)
        || (0xF900...0xFAFF).contains(cp) || (0x2F800...0x2FA1F).contains(cp)
}

/// Unicode punctuation (P*), plus every ASCII non-alphanumeric symbol, as BERT treats them.
@inline(__always)
func isPunctuation(_ s: Unicode.Scalar) -> Bool {
    if s.value < 0x80 { return isASCIIPunctuation(UInt8(s.value)) }
    switch s.properties.generalCategory {
    case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
         .initialPunctuation, .finalPunctuation, .otherPunctuation:
        return true
    default:
        return false
    }
}

// ASCII by comparisons rather than lookup tables: a global table costs a lazy-initialisation check
// on every access.

private enum ASCIIClass { case keep, space, drop }

/// With cleaning, \t \n \r and space split words and the other C0 controls and DEL are dropped;
/// without (tokenizers' `clean_text: false`), Rust's whitespace (9-13, 32) splits and all stays.
@inline(__always)
private func asciiClass(_ b: UInt8, cleanText: Bool) -> ASCIIClass {
    if b > 0x20 && b != 0x7F { return .keep }
    if b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D { return .space }
    if !cleanText { return b == 0x0B || b == 0x0C ? .space : .keep }
    return .drop
}

/// The ASCII symbols BERT splits off: 33-47, 58-64, 91-96, 123-126.
@inline(__always)
func isASCIIPunctuation(_ b: UInt8) -> Bool {
    (b >= 33 && b <= 47) || (b >= 58 && b <= 64) || (b >= 91 && b <= 96) || (b >= 123 && b <= 126)
}

@inline(__always)
private func asciiLowercased(_ b: UInt8) -> UInt8 {
    b &- 65 < 26 ? b | 0x20 : b
}

@inline(__always)
private func utf8Length(lead b: UInt8) -> Int {
    b < 0xE0 ? 2 : (b < 0xF0 ? 3 : 4)
}

@inline(__always)
private func decodeScalar(_ p: UnsafeBufferPointer<UInt8>, at i: Int, length: Int) -> Unicode.Scalar {
    var v: UInt32
    switch length {
    case 2: v = UInt32(p[i] & 0x1F)
    case 3: v = UInt32(p[i] & 0x0F)
    default: v = UInt32(p[i] & 0x07)
    }
    for k in 1..<length { v = (v << 6) | UInt32(p[i + k] & 0x3F) }
    return Unicode.Scalar(v)!
}

@inline(__always)
func appendUTF8(_ s: Unicode.Scalar, to bytes: inout [UInt8]) {
    let v = s.value
    switch v {
    case 0..<0x80:
        bytes.append(UInt8(v))
    case 0x80..<0x800:
        bytes.append(UInt8(0xC0 | (v >> 6)))
        bytes.append(UInt8(0x80 | (v & 0x3F)))
    case 0x800..<0x10000:
        bytes.append(UInt8(0xE0 | (v >> 12)))
        bytes.append(UInt8(0x80 | ((v >> 6) & 0x3F)))
        bytes.append(UInt8(0x80 | (v & 0x3F)))
    default:
        bytes.append(UInt8(0xF0 | (v >> 18)))
        bytes.append(UInt8(0x80 | ((v >> 12) & 0x3F)))
        bytes.append(UInt8(0x80 | ((v >> 6) & 0x3F)))
        bytes.append(UInt8(0x80 | (v & 0x3F)))
    }
}
