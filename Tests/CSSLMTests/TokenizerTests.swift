// The WordPiece tokenizer against HF's Python BertTokenizer: every case of
// Fixtures/tokenizer_parity.jsonl (scripts/make_tokenizer_reference.py: real sentences from the
// datasets and corpus, and hand-made hard cases) must give the same ids and token types. Plus
// batch padding, truncation arithmetic, and load errors that name their file.
import Foundation
import XCTest
@testable import CSSLM

final class TokenizerTests: XCTestCase {
    private struct Meta: Decodable {
        struct Body: Decodable {
            var unicode_version: String
            var cases: Int
            var cases_by_source: [String: Int]
        }
        var meta: Body
    }

    private struct Case: Decodable {
        var source: String
        var text: String
        var pair: String?
        var max_length: Int?
        var add_special_tokens: Bool
        var ids: [Int32]
        var token_type_ids: [Int32]
        var tokens: [String]
    }

    private static let repoRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    private static let modelDirectory = repoRoot.appendingPathComponent("assets/models/all-MiniLM-L6-v2")

    /// The fixture's cases, and the tokenizer set to the fixture's Unicode version.
    private func loadFixture(file: StaticString = #filePath, line: UInt = #line)
        throws -> (WordPieceTokenizer, [Case])?
    {
        let vocab = Self.modelDirectory.appendingPathComponent("vocab.txt")
        guard FileManager.default.fileExists(atPath: vocab.path) else {
            XCTFail("\(vocab.path) is missing: run scripts/setup.sh to fetch the model", file: file, line: line)
            return nil
        }
        let url = try XCTUnwrap(Bundle.module.url(forResource: "tokenizer_parity", withExtension: "jsonl",
                                                  subdirectory: "Fixtures"),
                                "fixture missing: run scripts/make_tokenizer_reference.py")
        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n")
        let decoder = JSONDecoder()
        let meta = try decoder.decode(Meta.self, from: Data(lines[0].utf8)).meta
        let cases = try lines.dropFirst().map { try decoder.decode(Case.self, from: Data($0.utf8)) }
        XCTAssertEqual(cases.count, meta.cases, "fixture truncated?")

        var config = try WordPieceConfig.load(modelDirectory: Self.modelDirectory)
        let version = meta.unicode_version.split(separator: ".").compactMap { Int($0) }
        config.unicodeVersionLimit = (version[0], version[1])
        let tokenizer = try WordPieceTokenizer(
            vocabulary: WordPieceVocabulary(contentsOf: vocab, continuingSubwordPrefix: config.continuingSubwordPrefix),
            config: config)
        return (tokenizer, cases)
    }

    func testEveryFixtureCaseMatchesHuggingFaceIds() throws {
        guard let (tokenizer, cases) = try loadFixture() else { return }
        let real = cases.filter { $0.source != "hand" && $0.source != "pair" }
        XCTAssertGreaterThanOrEqual(real.count, 2000, "the fixture should hold at least 2,000 real sentences")

        var mismatches: [String] = []
        for (i, c) in cases.enumerated() {
            let got = tokenizer.encode(c.text, pair: c.pair, maxLength: c.max_length,
                                       addSpecialTokens: c.add_special_tokens)
            if got.ids != c.ids || got.tokenTypeIds != c.token_type_ids {
                mismatches.append("""
                    case \(i + 1) (\(c.source)) \(String(reflecting: c.text.prefix(120)))\
                    \(c.pair.map { " + " + String(reflecting: $0.prefix(60)) } ?? "") max_length \(c.max_length.map(String.init) ?? "none")
                      expected \(c.tokens)
                      got      \(got.ids.map(tokenizer.token(for:)))
                      types expected \(c.token_type_ids) got \(got.tokenTypeIds)
                    """)
            }
        }
        XCTAssertEqual(mismatches.count, 0,
                       "\(mismatches.count) of \(cases.count) cases differ from HF; first ones:\n"
                           + mismatches.prefix(5).joined(separator: "\n"))
    }

    func testTokenizeGivesTheFixtureTokenStrings() throws {
        guard let (tokenizer, cases) = try loadFixture() else { return }
        for c in cases where c.pair == nil && c.max_length == nil && c.add_special_tokens {
            XCTAssertEqual(["[CLS]"] + tokenizer.tokenize(c.text) + ["[SEP]"], c.tokens, c.text)
        }
    }

    /// The padded batch the encoder takes (TokenBatch) holds each pair's single encoding, padded
    /// with [PAD], token type 0 and mask 0, the first [SEP] marked.
    func testBatchRowsEqualSingleEncodingsPaddedWithMask() throws {
        guard let (tokenizer, cases) = try loadFixture() else { return }
        let batch = Array(cases.filter { $0.pair != nil }.prefix(7))
        let singles = batch.map { tokenizer.encode($0.text, pair: $0.pair, maxLength: 32) }
        let encoded = try TokenBatch(sequences: singles.map(\.ids), typeIds: singles.map(\.tokenTypeIds),
                                     padId: tokenizer.paddingId, sepId: tokenizer.separatorId)
        let t = encoded.seqLen
        XCTAssertEqual(encoded.batch, batch.count)
        XCTAssertEqual(t, singles.map(\.count).max())
        for (r, single) in singles.enumerated() {
            let row = r * t..<(r + 1) * t
            XCTAssertEqual(Array(encoded.ids[row]), single.ids + Array(repeating: tokenizer.paddingId, count: t - single.count))
            XCTAssertEqual(Array(encoded.typeIds[row]), single.tokenTypeIds + Array(repeating: 0, count: t - single.count))
            XCTAssertEqual(Array(encoded.mask[row]), Array(repeating: 1, count: single.count) + Array(repeating: 0, count: t - single.count))
            XCTAssertEqual(encoded.sepPositions[r], single.ids.firstIndex(of: tokenizer.separatorId))
        }
    }

    /// HF's longest_first: the difference comes off the longer text, then both lose evenly, the
    /// first text keeping the odd token.
    func testLongestFirstTruncationOfPairs() throws {
        let tokenizer = try WordPieceTokenizer(vocabulary: WordPieceVocabulary(tokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b"]),
                                               config: WordPieceConfig())
        func lengths(_ n1: Int, _ n2: Int, _ max: Int) -> (Int, Int) {
            let e = tokenizer.encode(Array(repeating: "a", count: n1).joined(separator: " "),
                                     pair: Array(repeating: "b", count: n2).joined(separator: " "), maxLength: max)
            return (e.ids.filter { $0 == 4 }.count, e.ids.filter { $0 == 5 }.count)
        }
        XCTAssertTrue(lengths(7, 4, 8) == (3, 2))
        XCTAssertTrue(lengths(5, 5, 8) == (3, 2))
        XCTAssertTrue(lengths(4, 7, 8) == (3, 2))
        XCTAssertTrue(lengths(10, 2, 8) == (3, 2))
        XCTAssertTrue(lengths(2, 10, 9) == (2, 4))
        XCTAssertTrue(lengths(3, 3, 20) == (3, 3))
        XCTAssertTrue(lengths(3, 3, 3) == (0, 0))
    }

    // MARK: - Load errors name their file

    private func temporaryModel(_ files: [String: String]) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("csslm-tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for (name, content) in files {
            try content.write(to: dir.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    private func loadError(_ files: [String: String]) throws -> TokenizerError? {
        let dir = try temporaryModel(files)
        do {
            _ = try WordPieceTokenizer(modelDirectory: dir)
            return nil
        } catch let error as TokenizerError {
            return error
        }
    }

    private let smallVocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n"

    func testMissingVocabularyNamesTheFile() throws {
        let error = try XCTUnwrap(try loadError([:]))
        guard case .missingFile(let path) = error else { return XCTFail("\(error)") }
        XCTAssertTrue(path.hasSuffix("vocab.txt"), path)
        XCTAssertTrue(error.description.contains("vocab.txt"), error.description)
    }

    func testEmptyVocabularyIsAnError() throws {
        let error = try XCTUnwrap(try loadError(["vocab.txt": ""]))
        guard case .emptyVocabulary = error else { return XCTFail("\(error)") }
        XCTAssertTrue(error.path.hasSuffix("vocab.txt"))
    }

    func testDuplicateTokenNamesBothLines() throws {
        let error = try XCTUnwrap(try loadError(["vocab.txt": "[PAD]\n[UNK]\nhello\nworld\nhello\n"]))
        XCTAssertEqual(error, .duplicateToken(path: error.path, line: 5, token: "hello", firstLine: 3))
        XCTAssertTrue(error.description.contains("vocab.txt line 5"), error.description)
    }

    func testConfigThatIsNotJSONNamesTheFile() throws {
        let error = try XCTUnwrap(try loadError(["vocab.txt": smallVocab, "tokenizer_config.json": "{\"do_lower_case\": tru"]))
        guard case .malformedConfig(let path, _, _) = error else { return XCTFail("\(error)") }
        XCTAssertTrue(path.hasSuffix("tokenizer_config.json"), path)
    }

    func testConfigFieldOfTheWrongTypeNamesTheField() throws {
        let error = try XCTUnwrap(try loadError(["vocab.txt": smallVocab, "tokenizer_config.json": "{\"do_lower_case\": \"yes\"}"]))
        guard case .malformedConfig(let path, let field, _) = error else { return XCTFail("\(error)") }
        XCTAssertTrue(path.hasSuffix("tokenizer_config.json"), path)
        XCTAssertEqual(field, "do_lower_case")
        XCTAssertTrue(error.description.contains("do_lower_case"), error.description)
    }

    func testUnsupportedNormalizerInTokenizerJSONNamesTheField() throws {
        let json = "{\"normalizer\": {\"type\": \"NFKC\"}, \"model\": {\"type\": \"WordPiece\"}}"
        let error = try XCTUnwrap(try loadError(["vocab.txt": smallVocab, "tokenizer.json": json]))
        guard case .malformedConfig(let path, let field, _) = error else { return XCTFail("\(error)") }
        XCTAssertTrue(path.hasSuffix("tokenizer.json"), path)
        XCTAssertEqual(field, "normalizer.type")
    }

    func testSpecialTokenMissingFromVocabularyIsNamed() throws {
        let error = try XCTUnwrap(try loadError(["vocab.txt": "[PAD]\n[CLS]\n[SEP]\nhello\n"]))
        XCTAssertEqual(error, .unknownSpecialToken(path: error.path, role: "unk_token", token: "[UNK]"))
    }

    func testFlagsComeFromTheConfigFiles() throws {
        let normalizer = { (lowercase: Bool) in
            "{\"normalizer\": {\"type\": \"BertNormalizer\", \"lowercase\": \(lowercase), \"strip_accents\": null}, \"model\": {\"type\": \"WordPiece\", \"max_input_chars_per_word\": 5}}"
        }
        // tokenizer_config.json (what the Python reference reads) overrides tokenizer.json.
        let dir = try temporaryModel([
            "vocab.txt": smallVocab + "Hello\n",
            "tokenizer.json": normalizer(true),
            "tokenizer_config.json": "{\"do_lower_case\": false, \"model_max_length\": 1000000000000000019884624838656}",
        ])
        let tokenizer = try WordPieceTokenizer(modelDirectory: dir)
        XCTAssertFalse(tokenizer.config.lowercase)
        XCTAssertNil(tokenizer.config.modelMaxLength)
        XCTAssertEqual(tokenizer.config.maxInputCharsPerWord, 5)
        XCTAssertEqual(tokenizer.tokenize("Hello hello Hellos"), ["Hello", "hello", "[UNK]"])

        // tokenizer.json alone sets the flags.
        let jsonOnly = try WordPieceTokenizer(modelDirectory: try temporaryModel([
            "vocab.txt": smallVocab + "Hello\n", "tokenizer.json": normalizer(false),
        ]))
        XCTAssertEqual(jsonOnly.tokenize("Hello"), ["Hello"])
    }
}
