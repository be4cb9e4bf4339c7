// Model inputs from text: [CLS] A [SEP] (B [SEP]), token type ids 0 for A and 1 for B, and
// truncation to a maximum length (HF's longest_first for pairs). Batches are padded by
// `TokenBatch(sequences:typeIds:padId:sepId:)`, the one padded form the encoder takes.
import Foundation

/// One encoded sequence (or pair), unpadded.
public struct Encoding: Equatable, Sendable {
    /// Token ids, special tokens included.
    public var ids: [Int32]
    /// 0 for [CLS], the first text and its [SEP]; 1 for the second text and its [SEP].
    public var tokenTypeIds: [Int32]

    public var count: Int { ids.count }
}

extension WordPieceTokenizer {
    /// Encodes a text, or a pair of texts, as the model takes them.
    ///
    /// - Parameters:
    ///   - maxLength: truncate to this many tokens, special tokens included (`nil`: never). A pair
    ///     loses tokens from its longer text first (HF's `longest_first`).
    ///   - addSpecialTokens: add [CLS] and [SEP] (with a pair, token types are 0 then 1); without,
    ///     the ids are the texts' pieces back to back and every token type is 0, as HF does.
    public func encode(_ text: String, pair: String? = nil, maxLength: Int? = nil,
                       addSpecialTokens: Bool = true) -> Encoding {
        var first = ids(of: text)
        var second = pair.map(ids(of:))
        return assemble(&first, &second, maxLength: maxLength, addSpecialTokens: addSpecialTokens)
    }

    /// Truncates (HF's rules, to the letter) then adds the special tokens.
    func assemble(_ first: inout [Int32], _ second: inout [Int32]?, maxLength: Int?,
                  addSpecialTokens: Bool) -> Encoding {
        let specials = addSpecialTokens ? (second == nil ? 2 : 3) : 0
        let total = first.count + (second?.count ?? 0) + specials
        if let maxLength, maxLength > 0, total > maxLength {
            let remove = total - maxLength
            if second == nil {
                first.removeLast(min(remove, first.count))
            } else {
                // HF's longest_first in closed form: take the length difference off the longer
                // text, then split the rest evenly, the odd token off the second text.
                let n1 = first.count, n2 = second!.count
                let fromLonger = min(abs(n2 - n1), remove)
                let rest = remove - fromLonger
                let (cut1, cut2) = n1 > n2
                    ? (fromLonger + rest / 2, rest - rest / 2)
                    : (rest / 2, fromLonger + rest - rest / 2)
                first.removeLast(min(cut1, n1))
                second!.removeLast(min(cut2, n2))
            }
        }
        var ids: [Int32] = []
        var types: [Int32] = []
        ids.reserveCapacity(total)
        types.reserveCapacity(total)
        if addSpecialTokens { ids.append(classifierId) }
        ids += first
        if addSpecialTokens { ids.append(separatorId) }
        types += repeatElement(0, count: ids.count)
        if let second {
            ids += second
            if addSpecialTokens {
                ids.append(separatorId)
                types += repeatElement(1, count: second.count + 1)
            } else {
                types += repeatElement(0, count: second.count)
            }
        }
        return Encoding(ids: ids, tokenTypeIds: types)
    }
}
