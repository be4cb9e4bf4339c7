// Inputs that crashed a fuzz target (scripts/fuzz.sh), replayed against the fixed code. Each
// crashing input is also committed to its target's seed folder, Tests/Fuzz/<target>/regression-*,
// so every fuzz run starts from it.
import Foundation
import XCTest
@testable import CSSLM

final class FuzzRegressionTests: XCTestCase {
    private func temporaryFile(_ name: String, _ bytes: [UInt8]) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("csslm-fuzzreg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url
    }

    /// Target `tokenizer`, Tests/Fuzz/tokenizer/regression-fixed-padding.bin: an empty text and a
    /// text of invalid UTF-8. Found in the fixed-length batch padding (since removed: the encoder
    /// takes TokenBatch, padded to the longest row), where a 2-token row was written past a 1-token
    /// slot. Kept for the truncation it exercises: down to the special tokens alone, they stay.
    func testTruncationDownToTheSpecialTokensKeepsThem() throws {
        let crash: [UInt8] = [
            0x60, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xAF, 0xAF, 0xAF, 0xAF, 0xAF, 0xAF, 0xAF, 0xAF,
            0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFD, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
            0xFF, 0xFF, 0x01, 0xC3, 0x28, 0x20, 0xA0, 0xA1, 0x20, 0xF0, 0xD7, 0x8C, 0xBC, 0x20, 0x65, 0x6E, 0x64,
        ]
        // The harness's reading: byte 0 flags, byte 1 max length, then text 0xFF second text.
        let parts = crash[2...].split(separator: 0xFF, maxSplits: 1, omittingEmptySubsequences: false)
        let texts = parts.map { String(decoding: $0, as: UTF8.self) }
        var config = WordPieceConfig()
        config.maxInputCharsPerWord = 3
        let vocab = WordPieceVocabulary(tokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "end", "e", "##n", "##d"])
        let tokenizer = try WordPieceTokenizer(vocabulary: vocab, config: config)

        // (Found in the fixed-length padding path, since removed; the same truncations through encode.)
        XCTAssertEqual(texts.map { tokenizer.encode($0, maxLength: 2).ids }, [[2, 3], [2, 3]])
        let pair = tokenizer.encode(texts[1], pair: texts[1], maxLength: 3)
        XCTAssertEqual(pair.ids, [2, 3, 3])
        XCTAssertEqual(pair.tokenTypeIds, [0, 0, 1])
        for text in texts {
            let roomy = tokenizer.encode(text, maxLength: 6).ids
            XCTAssertTrue((2...6).contains(roomy.count))
            XCTAssertEqual(roomy.first, 2)
            XCTAssertEqual(roomy.last, 3)
        }
    }

    /// Target `jsonl`, Tests/Fuzz/jsonl/regression-huge-label-index.jsonl: without a label list the
    /// names are "0"..."max index", so one record with label 99999999999 asked for a 100-billion
    /// entry array (libFuzzer's malloc limit; a crash on any machine). Now an index at or above
    /// InputLimits.maxLabelCount is an error at its line.
    func testHugeLabelIndexIsAnErrorNotAnAllocation() throws {
        let url = try temporaryFile("data.jsonl", Array("{\"text\":\"x\",\"label\":99999999999}\n".utf8))
        XCTAssertThrowsError(try LabeledDataset.readJSONL(at: url)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("\(url.path):1:") && text.contains("label index 99999999999 is beyond the limit"), text)
        }
        let max = try temporaryFile("max.jsonl", Array("{\"text\":\"x\",\"label\":\(Int.max)}\n".utf8))
        XCTAssertThrowsError(try LabeledDataset.readJSONL(at: max))
    }
}
