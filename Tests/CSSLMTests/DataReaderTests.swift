// Readers of labelled data and of the unlabelled corpus, on small files written to a temporary
// directory, and the real assets that scripts/setup.sh produces (counts as documented in
// assets/README.md, no dev/test text in train or in any corpus file).

import Foundation
import XCTest
@testable import CSSLM

final class DataReaderTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("csslm-data-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    private func write(_ name: String, _ content: String) throws -> URL {
        try write(name, Data(content.utf8))
    }

    private func write(_ name: String, _ bytes: Data) throws -> URL {
        let url = directory.appendingPathComponent(name)
        try bytes.write(to: url)
        return url
    }

    /// Runs `body`, which must throw a DataError at `line` of `url` whose message contains `fragment`.
    private func assertDataError<T>(_ url: URL, line: Int?, _ fragment: String,
                                    file: StaticString = #filePath, sourceLine: UInt = #line,
                                    _ body: () throws -> T) {
        do {
            _ = try body()
            XCTFail("expected an error at line \(line.map(String.init) ?? "-")", file: file, line: sourceLine)
        } catch let error as DataError {
            let message = error.description
            XCTAssertEqual(error.file, url.path, file: file, line: sourceLine)
            XCTAssertEqual(error.line, line, message, file: file, line: sourceLine)
            let location = line.map { "\(url.path):\($0):" } ?? "\(url.path):"
            XCTAssertTrue(message.contains(location), "message lacks \(location): \(message)",
                          file: file, line: sourceLine)
            XCTAssertTrue(message.contains(fragment), "message lacks \"\(fragment)\": \(message)",
                          file: file, line: sourceLine)
        } catch {
            XCTFail("expected a DataError, got \(error)", file: file, line: sourceLine)
        }
    }

    // MARK: JSONL

    func testJSONLReadsLabelNamesAndIndicesAgainstTheLabelList() throws {
        let url = try write("train.jsonl", """
            {"text": "a fine film", "label": "fresh"}
            {"text": "dull", "label": 0, "extra": [1, 2]}
            {"label": "fresh", "text": "caf\\u00e9 \\"noir\\""}

            """)
        let (set, report) = try LabeledDataset.readJSONL(at: url, labels: ["rotten", "fresh"])
        XCTAssertEqual(set.labels, ["rotten", "fresh"])
        XCTAssertEqual(set.examples.map(\.text), ["a fine film", "dull", "café \"noir\""])
        XCTAssertEqual(set.examples.map(\.label), [1, 0, 1])
        XCTAssertEqual(set.examples.map(\.line), [1, 2, 3])
        XCTAssertEqual(set.classCounts, [1, 2])
        XCTAssertEqual(set.source, url.path)
        XCTAssertTrue(report.isClean)
        XCTAssertEqual(report.records, 3)
    }

    func testJSONLWithoutLabelListInfersSortedNamesOrIndexRange() throws {
        let names = try write("names.jsonl", "{\"text\":\"x\",\"label\":\"pos\"}\n{\"text\":\"y\",\"label\":\"neg\"}\n")
        XCTAssertEqual(try LabeledDataset.readJSONL(at: names).dataset.labels, ["neg", "pos"])
        let indices = try write("indices.jsonl", "{\"text\":\"x\",\"label\":2}\n{\"text\":\"y\",\"label\":0}\n")
        let (set, _) = try LabeledDataset.readJSONL(at: indices)
        XCTAssertEqual(set.labels, ["0", "1", "2"])
        XCTAssertEqual(set.examples.map(\.label), [2, 0])
        let mixed = try write("mixed.jsonl", "{\"text\":\"x\",\"label\":\"pos\"}\n{\"text\":\"y\",\"label\":1}\n")
        assertDataError(mixed, line: 2, "earlier labels are names") { try LabeledDataset.readJSONL(at: mixed) }
    }

    func testJSONLMalformedRecordNamesFileAndLine() throws {
        let url = try write("bad.jsonl", """
            {"text": "ok", "label": "a"}

            {"text": "broken", "label": "a"
            """)
        assertDataError(url, line: 3, "not valid JSON") { try LabeledDataset.readJSONL(at: url, labels: ["a"]) }

        let missing = try write("missing.jsonl", "{\"text\": \"ok\", \"label\": \"a\"}\n{\"text\": \"no label\"}\n")
        assertDataError(missing, line: 2, "missing key \"label\"") {
            try LabeledDataset.readJSONL(at: missing, labels: ["a"])
        }
        let notText = try write("number.jsonl", "{\"text\": 5, \"label\": \"a\"}\n")
        assertDataError(notText, line: 1, "text") { try LabeledDataset.readJSONL(at: notText, labels: ["a"]) }
        let boolLabel = try write("bool.jsonl", "{\"text\": \"t\", \"label\": true}\n")
        assertDataError(boolLabel, line: 1, "string name or an integer") {
            try LabeledDataset.readJSONL(at: boolLabel, labels: ["a", "b"])
        }
        let array = try write("array.jsonl", "[\"t\", \"a\"]\n")
        assertDataError(array, line: 1, "malformed") { try LabeledDataset.readJSONL(at: array, labels: ["a"]) }
    }

    func testJSONLUnknownLabelNameOrIndexNamesFileAndLine() throws {
        let url = try write("unknown.jsonl", "{\"text\":\"x\",\"label\":\"pos\"}\n{\"text\":\"y\",\"label\":\"postive\"}\n")
        assertDataError(url, line: 2, "unknown label \"postive\"") {
            try LabeledDataset.readJSONL(at: url, labels: ["neg", "pos"])
        }
        let index = try write("index.jsonl", "{\"text\":\"x\",\"label\":1}\n{\"text\":\"y\",\"label\":2}\n")
        assertDataError(index, line: 2, "index 2") { try LabeledDataset.readJSONL(at: index, labels: ["neg", "pos"]) }
        let negative = try write("negative.jsonl", "{\"text\":\"x\",\"label\":-1}\n")
        assertDataError(negative, line: 1, "index -1") {
            try LabeledDataset.readJSONL(at: negative, labels: ["neg", "pos"])
        }
    }

    func testEmptyAndDuplicateTextsAreReportedWithLinesAndKept() throws {
        let url = try write("dups.jsonl", """
            {"text": "same", "label": "a"}
            {"text": "", "label": "a"}
            {"text": "other", "label": "b"}
            {"text": " same ", "label": "a"}
            {"text": "   ", "label": "b"}
            {"text": "same", "label": "b"}
            """)
        let (set, report) = try LabeledDataset.readJSONL(at: url, labels: ["a", "b"])
        XCTAssertEqual(set.count, 6, "nothing is dropped")
        XCTAssertFalse(report.isClean)
        XCTAssertEqual(report.records, 6)
        XCTAssertEqual(report.emptyTextLines, [2, 5])
        XCTAssertEqual(report.duplicates, [
            .init(line: 4, firstLine: 1, conflictingLabel: false),
            .init(line: 6, firstLine: 1, conflictingLabel: true),
        ])
        XCTAssertTrue(report.summary.contains("2 empty texts (lines 2, 5)"), report.summary)
        XCTAssertTrue(report.summary.contains("2 duplicate texts (lines 4, 6; 1 with another label)"),
                      report.summary)
    }

    func testByteOrderMarkCRLFAndMissingFinalNewlineAreAccepted() throws {
        var bytes = Data([0xEF, 0xBB, 0xBF])
        bytes.append(Data("{\"text\":\"one\",\"label\":\"a\"}\r\n\r\n{\"text\":\"two\",\"label\":\"a\"}".utf8))
        let url = try write("crlf.jsonl", bytes)
        let (set, _) = try LabeledDataset.readJSONL(at: url, labels: ["a"])
        XCTAssertEqual(set.examples.map(\.text), ["one", "two"])
        XCTAssertEqual(set.examples.map(\.line), [1, 3])
    }

    func testInvalidUTF8IsAnErrorAtItsLineNotAReplacementCharacter() throws {
        var bytes = Data("{\"text\":\"ok\",\"label\":\"a\"}\n{\"text\":\"bad ".utf8)
        bytes.append(contentsOf: [0xA3, 0x31])  // Latin-1 pound sign
        bytes.append(Data("\",\"label\":\"a\"}\n".utf8))
        let url = try write("latin1.jsonl", bytes)
        assertDataError(url, line: 2, "not valid UTF-8") { try LabeledDataset.readJSONL(at: url, labels: ["a"]) }
    }

    func testUTF8ValidatorAgreesWithFoundation() {
        let cases: [[UInt8]] = [
            Array("plain ascii".utf8), Array("é ü 中文 😀".utf8),
            [0xC0, 0x80], [0xE0, 0x80, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80],
            [0xF0, 0x9F, 0x98], [0x80], [0xFF], [0xE2, 0x82, 0xAC], [0xF0, 0x9F, 0x98, 0x80],
        ]
        for bytes in cases {
            let valid = TextLines.firstInvalidUTF8(bytes[...]) == nil
            XCTAssertEqual(valid, String(bytes: bytes, encoding: .utf8) != nil, "\(bytes)")
        }
    }

    func testUnreadableFileNamesThePath() {
        let url = directory.appendingPathComponent("absent.jsonl")
        assertDataError(url, line: nil, "cannot read") { try LabeledDataset.readJSONL(at: url) }
    }

    // MARK: labels.txt and split directories

    func testLabelsFileReadsNamesInOrderAndRejectsEmptyOrRepeatedNames() throws {
        let url = try write("labels.txt", "negative\r\nneutral \npositive\n\n")
        XCTAssertEqual(try LabeledDataset.readLabels(at: url), ["negative", "neutral", "positive"])
        let repeated = try write("repeated.txt", "a\nb\na\n")
        assertDataError(repeated, line: 3, "repeats line 1") { try LabeledDataset.readLabels(at: repeated) }
        let gap = try write("gap.txt", "a\n\nb\n")
        assertDataError(gap, line: 2, "empty label name") { try LabeledDataset.readLabels(at: gap) }
        let empty = try write("empty.txt", "\n")
        assertDataError(empty, line: 1, "no labels") { try LabeledDataset.readLabels(at: empty) }
    }

    func testSplitsDirectoryLoadsAllThreeFilesAgainstLabelsTxt() throws {
        _ = try write("labels.txt", "neg\npos\n")
        _ = try write("train.jsonl", "{\"text\":\"a\",\"label\":\"pos\"}\n{\"text\":\"b\",\"label\":\"neg\"}\n")
        _ = try write("dev.jsonl", "{\"text\":\"c\",\"label\":1}\n")
        let test = try write("test.jsonl", "{\"text\":\"d\",\"label\":\"neutral\"}\n")
        assertDataError(test, line: 1, "unknown label \"neutral\"") { try DatasetSplits.load(directory: directory) }
        _ = try write("test.jsonl", "{\"text\":\"d\",\"label\":\"neg\"}\n")
        let splits = try DatasetSplits.load(directory: directory)
        XCTAssertEqual(splits.labels, ["neg", "pos"])
        XCTAssertEqual([splits.train.count, splits.dev.count, splits.test.count], [2, 1, 1])
        XCTAssertEqual(splits.dev.examples[0].label, 1)
        XCTAssertEqual(splits.reports.count, 3)
    }

    /// A split may be CSV, TSV or the reference JSON list instead of JSONL: the same examples load;
    /// two files for one split, or none, is an error naming the split.
    func testSplitsMayBeCSVTSVOrReferenceJSONAndTwoFilesForASplitAreAnError() throws {
        _ = try write("labels.txt", "neg\npos\n")
        _ = try write("train.jsonl", "{\"text\":\"a, quoted \\\"b\\\"\",\"label\":\"pos\"}\n{\"text\":\"c\",\"label\":\"neg\"}\n")
        _ = try write("dev.jsonl", "{\"text\":\"d\",\"label\":1}\n")
        _ = try write("test.jsonl", "{\"text\":\"e\",\"label\":\"neg\"}\n")
        let jsonl = try DatasetSplits.load(directory: directory)
        let identity = try RunIdentity.folderDigest(directory, files: RunIdentity.datasetFiles, allRequired: false)
        XCTAssertEqual(identity, try RunIdentity.folderDigest(directory, files: ["labels.txt", "train.jsonl", "dev.jsonl", "test.jsonl"],
                                                              allRequired: false), "a JSONL folder keeps its identity")

        let csv = try write("train.csv", "label,text\npos,\"a, quoted \"\"b\"\"\"\nneg,c\n")
        assertDataError(directory.appendingPathComponent("train"), line: nil, "train.jsonl and train.csv both present") {
            try DatasetSplits.load(directory: directory)
        }
        try FileManager.default.removeItem(at: directory.appendingPathComponent("train.jsonl"))
        try FileManager.default.removeItem(at: directory.appendingPathComponent("dev.jsonl"))
        try FileManager.default.removeItem(at: directory.appendingPathComponent("test.jsonl"))
        assertDataError(directory.appendingPathComponent("dev"), line: nil, "no dev split: expected one of dev.jsonl, dev.csv") {
            try DatasetSplits.load(directory: directory)
        }
        _ = try write("dev.tsv", "text\tlabel\nd\tpos\n")
        _ = try write("test.json", "[\n  {\"sentence\": \"e\", \"aspect\": \"\", \"sentiment\": \"neg\"}\n]\n")
        let mixed = try DatasetSplits.load(directory: directory)
        XCTAssertEqual(mixed.labels, jsonl.labels)
        for (a, b) in [(mixed.train, jsonl.train), (mixed.dev, jsonl.dev), (mixed.test, jsonl.test)] {
            XCTAssertEqual(a.examples.map(\.text), b.examples.map(\.text))
            XCTAssertEqual(a.examples.map(\.label), b.examples.map(\.label))
        }
        XCTAssertEqual(mixed.files.map(\.lastPathComponent), ["train.csv", "dev.tsv", "test.json"])
        XCTAssertNotEqual(try RunIdentity.folderDigest(directory, files: RunIdentity.datasetFiles, allRequired: false), identity)
        _ = csv
    }

    // MARK: CSV / TSV

    func testCSVSelectsColumnsByNameAndHandlesRFC4180Quoting() throws {
        let url = try write("data.csv", "id,label,text\r\n"
            + "1,pos,plain text\r\n"
            + "2,neg,\"with, comma\"\r\n"
            + "3,pos,\"doubled \"\"quotes\"\" inside\"\r\n"
            + "4,neg,\"two\r\nlines\"\r\n"
            + "5,pos,\r\n"
            + "6,neg,\"\"\r\n"
            + "7,pos,she said \"hi\" twice\r\n"
            + "8,\"neg\",last line without newline")
        let (set, report) = try LabeledDataset.readCSV(at: url, labels: ["neg", "pos"])
        XCTAssertEqual(set.examples.map(\.text), [
            "plain text", "with, comma", "doubled \"quotes\" inside", "two\r\nlines", "", "",
            "she said \"hi\" twice", "last line without newline",
        ])
        XCTAssertEqual(set.examples.map(\.label), [1, 0, 1, 0, 1, 0, 1, 0])
        XCTAssertEqual(set.examples.map(\.line), [2, 3, 4, 5, 7, 8, 9, 10], "a quoted line break moves the line")
        XCTAssertEqual(report.emptyTextLines, [7, 8])
    }

    func testTSVUsesTabsAndQuotedTabsStayInTheField() throws {
        let url = try write("data.tsv", "sentence\tstars\n\"a\ttabbed\"\t5\nno quotes, commas fine\t1\n\n")
        let (set, _) = try LabeledDataset.readCSV(at: url, textColumn: "sentence", labelColumn: "stars")
        XCTAssertEqual(set.labels, ["1", "5"])
        XCTAssertEqual(set.examples.map(\.text), ["a\ttabbed", "no quotes, commas fine"])
        XCTAssertEqual(set.examples.map(\.label), [1, 0])
        let semicolons = try write("semi.txt", "text;label\n\"a;b\";x\n")
        let (semi, _) = try LabeledDataset.readCSV(at: semicolons, delimiter: ";")
        XCTAssertEqual(semi.examples.map(\.text), ["a;b"])
    }

    func testCSVParserSplitsRecordsExactly() throws {
        var parser = CSVParser(bytes: Array("a,,\"\"\n,\n\"x\"\"\",\"\n\"\n".utf8), delimiter: UInt8(ascii: ","),
                               file: "mem")
        var records: [CSVRecord] = []
        while let record = try parser.next() { records.append(record) }
        XCTAssertEqual(records, [
            CSVRecord(fields: ["a", "", ""], line: 1),
            CSVRecord(fields: ["", ""], line: 2),
            CSVRecord(fields: ["x\"", "\n"], line: 3),
        ])
    }

    func testCSVErrorsNameFileAndLine() throws {
        let unterminated = try write("open.csv", "text,label\nfine,a\n\"never\nclosed,a\n")
        assertDataError(unterminated, line: 3, "never closes") { try LabeledDataset.readCSV(at: unterminated) }
        let trailing = try write("trailing.csv", "text,label\n\"quoted\"junk,a\n")
        assertDataError(trailing, line: 2, "after a closing quote") { try LabeledDataset.readCSV(at: trailing) }
        let fields = try write("fields.csv", "text,label\nok,a\n\"multi\nline\",a\ntoo,many,fields\n")
        assertDataError(fields, line: 5, "3 fields, the header has 2") { try LabeledDataset.readCSV(at: fields) }
        let column = try write("column.csv", "review,stars\nok,1\n")
        assertDataError(column, line: 1, "no column \"text\" in header [review, stars]") {
            try LabeledDataset.readCSV(at: column)
        }
        let label = try write("label.csv", "text,label\nok,a\nalso,c\n")
        assertDataError(label, line: 3, "unknown label \"c\"") { try LabeledDataset.readCSV(at: label, labels: ["a", "b"]) }
        let empty = try write("empty.csv", "")
        assertDataError(empty, line: 1, "no header row") { try LabeledDataset.readCSV(at: empty) }
    }

    // MARK: reference JSON list

    func testReferenceJSONListReadsSentenceAspectSentimentWithElementLines() throws {
        let url = try write("restaurant.json", """
            [
              {
                "sentence": "The fish was fresh.",
                "aspect": "fish",
                "sentiment": "positive"
              },
              {"sentence": "Service: slow, \\"rude\\" [sic] {really}.", "aspect": "", "sentiment": "negative"},
              {"sentence": "Fine.", "sentiment": 1}
            ]
            """)
        let (set, report) = try LabeledDataset.readReferenceJSON(at: url, labels: ["negative", "positive"])
        XCTAssertEqual(set.examples.map(\.text),
                       ["The fish was fresh.", "Service: slow, \"rude\" [sic] {really}.", "Fine."])
        XCTAssertEqual(set.examples.map(\.aspect), ["fish", nil, nil])
        XCTAssertEqual(set.examples.map(\.label), [1, 0, 1])
        XCTAssertEqual(set.examples.map(\.line), [2, 7, 8])
        XCTAssertTrue(report.isClean)
        XCTAssertEqual(try LabeledDataset.readReferenceJSON(at: try write("empty.json", " [ ] \n")).dataset.count, 0)
    }

    func testReferenceJSONErrorsNameTheLineOfTheElement() throws {
        let unknown = try write("unknown.json", "[\n{\"sentence\": \"a\", \"sentiment\": \"positive\"},\n"
                                + "{\"sentence\": \"b\",\n \"sentiment\": \"conflict\"}\n]")
        assertDataError(unknown, line: 3, "unknown label \"conflict\"") {
            try LabeledDataset.readReferenceJSON(at: unknown, labels: ["negative", "positive"])
        }
        let missing = try write("missing.json", "[{\"sentence\": \"a\", \"sentiment\": 0},\n\n {\"aspect\": \"x\", \"sentiment\": 0}]")
        assertDataError(missing, line: 3, "missing key \"sentence\"") { try LabeledDataset.readReferenceJSON(at: missing) }
        let comma = try write("comma.json", "[{\"sentence\": \"a\", \"sentiment\": 0}\n {\"sentence\": \"b\", \"sentiment\": 0}]")
        assertDataError(comma, line: 2, "expected \",\" or \"]\"") { try LabeledDataset.readReferenceJSON(at: comma) }
        let inner = try write("inner.json", "[\n{\"sentence\": \"a\" \"sentiment\": 0}]")
        assertDataError(inner, line: 2, "not valid JSON") { try LabeledDataset.readReferenceJSON(at: inner) }
        let open = try write("open.json", "[\n{\"sentence\": \"a\", \"sentiment\": 0},\n{\"sentence\": \"b\"")
        assertDataError(open, line: 3, "never closes") { try LabeledDataset.readReferenceJSON(at: open) }
        let after = try write("after.json", "[]\n]")
        assertDataError(after, line: 2, "after the end of the array") { try LabeledDataset.readReferenceJSON(at: after) }
        let object = try write("object.json", "{\"sentence\": \"a\"}")
        assertDataError(object, line: 1, "one JSON array") { try LabeledDataset.readReferenceJSON(at: object) }
    }

    // MARK: unlabelled corpus

    func testCorpusReaderStreamsAcrossChunkBoundariesAndFiltersByTokenCount() throws {
        let url = try write("corpus.txt", "  first sentence here  \r\n\nshort\nthe fourth line is long enough\r\n"
                            + "   \nlast line without newline")
        for chunkSize in [1, 3, 7, 1 << 20] {
            let reader = try UnlabeledCorpusReader(url: url, minimumTokens: 3, chunkSize: chunkSize)
            var lines: [CorpusLine] = []
            while let line = try reader.next() { lines.append(line) }
            XCTAssertEqual(lines, [
                CorpusLine(text: "first sentence here", line: 1),
                CorpusLine(text: "the fourth line is long enough", line: 4),
                CorpusLine(text: "last line without newline", line: 6),
            ], "chunk size \(chunkSize)")
            XCTAssertEqual(reader.stats, CorpusReadStats(linesRead: 6, kept: 3, blank: 2, belowMinimumTokens: 1))
        }
        // The hook: any token counter, e.g. characters.
        let (byCharacters, stats) = try UnlabeledCorpusReader.read(url: url, minimumTokens: 20,
                                                                   tokenCount: { $0.count })
        XCTAssertEqual(byCharacters.map(\.line), [4, 6])
        XCTAssertEqual(stats.belowMinimumTokens, 2)
        let (limited, _) = try UnlabeledCorpusReader.read(url: url, limit: 2)
        XCTAssertEqual(limited.map(\.text), ["first sentence here", "short"])
    }

    func testTrimmingAndWordCountUseUnicodeWhitespace() {
        XCTAssertEqual(TextLines.trimmed("\u{3000} a b\u{00A0}\r\n"), "a b")
        XCTAssertEqual(TextLines.trimmed(" \t "), "")
        XCTAssertEqual(TextLines.wordCount(" a  b\u{00A0}c\u{2003}déjà-vu "), 4)
        XCTAssertEqual(UnlabeledCorpusReader.whitespaceTokenCount(""), 0)
    }

    func testCorpusReaderNamesTheLineOfInvalidUTF8() throws {
        var bytes = Data("fine line\nsecond\n".utf8)
        bytes.append(contentsOf: [0x62, 0x61, 0x64, 0xFF, 0x0A])
        let url = try write("bad.txt", bytes)
        assertDataError(url, line: 3, "not valid UTF-8") { try UnlabeledCorpusReader.read(url: url) }
    }

    // MARK: the real assets from scripts/setup.sh

    /// Counts per split and class as documented in assets/README.md (scripts/fetch_data.py).
    private static let documentedCounts: [String: (labels: [String], train: [Int], dev: [Int], test: [Int])] = [
        "rotten_tomatoes": (["rotten", "fresh"], [4307, 5894], [538, 737], [538, 737]),
        "bbc_news": (["business", "entertainment", "politics", "sport", "tech"],
                     [403, 295, 323, 402, 277], [50, 37, 40, 50, 35], [50, 37, 40, 50, 35]),
        "twitter_sentiment": (["negative", "neutral", "positive"],
                              [8453, 5915, 1924], [1056, 740, 240], [1056, 740, 240]),
    ]
    private static let documentedCorpusLines = [
        "general": 342_999, "rotten_tomatoes": 353_198, "bbc_news": 344_699, "twitter_sentiment": 359_281,
    ]

    /// Leak-check key: ASCII letters lower-cased, whitespace runs collapsed, ends trimmed (the
    /// fetch script's own check folds all of Unicode; this one is cheap enough for 1.4M lines).
    private static func comparisonKey(_ text: String) -> String {
        var key: [UInt8] = []
        key.reserveCapacity(text.utf8.count)
        var pendingSpace = false
        for b in text.utf8 {
            if b == 0x20 || (0x09...0x0D).contains(b) {
                pendingSpace = !key.isEmpty
                continue
            }
            if pendingSpace { key.append(0x20); pendingSpace = false }
            key.append((0x41...0x5A).contains(b) ? b | 0x20 : b)
        }
        return String(decoding: key, as: UTF8.self)
    }

    func testRealAssetsHaveDocumentedCountsAndNoHeldOutTextInTrainOrCorpus() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let assets = root.appendingPathComponent("assets")
        let manifest = assets.appendingPathComponent("data/MANIFEST.sha256")
        guard FileManager.default.fileExists(atPath: manifest.path) else {
            XCTFail("\(assets.path)/data is missing: run scripts/setup.sh (it runs scripts/fetch_data.py)")
            return
        }
        var heldOut = Set<String>()
        var splitsOf: [String: DatasetSplits] = [:]
        for (task, expected) in Self.documentedCounts {
            let splits = try DatasetSplits.load(directory: assets.appendingPathComponent("data/\(task)"))
            splitsOf[task] = splits
            XCTAssertEqual(splits.labels, expected.labels, task)
            XCTAssertEqual(splits.train.classCounts, expected.train, "\(task) train")
            XCTAssertEqual(splits.dev.classCounts, expected.dev, "\(task) dev")
            XCTAssertEqual(splits.test.classCounts, expected.test, "\(task) test")
            for report in splits.reports {
                XCTAssertTrue(report.isClean, report.summary)
            }
            let heldOutOfTask = Set((splits.dev.examples + splits.test.examples).map { Self.comparisonKey($0.text) })
            let leaked = splits.train.examples.filter { heldOutOfTask.contains(Self.comparisonKey($0.text)) }
            XCTAssertEqual(leaked.count, 0, "\(task): train holds dev/test texts, e.g. \(leaked.first?.text ?? "")")
            XCTAssertEqual(Set(splits.dev.examples.map { Self.comparisonKey($0.text) })
                .intersection(splits.test.examples.map { Self.comparisonKey($0.text) }).count, 0, task)
            heldOut.formUnion(heldOutOfTask)
        }
        for (name, expectedLines) in Self.documentedCorpusLines {
            let url = assets.appendingPathComponent("corpus/\(name).txt")
            let reader = try UnlabeledCorpusReader(url: url)
            var leaks: [CorpusLine] = []
            var trainTextsFound = 0
            let trainKeys = Set((splitsOf[name]?.train.examples ?? []).map { Self.comparisonKey($0.text) })
            while let line = try reader.next() {
                let key = Self.comparisonKey(line.text)
                if heldOut.contains(key) { leaks.append(line) }
                if trainKeys.contains(key) { trainTextsFound += 1 }
            }
            XCTAssertEqual(reader.stats.kept, expectedLines, "corpus/\(name).txt lines")
            XCTAssertEqual(reader.stats.blank, 0, "corpus/\(name).txt")
            XCTAssertTrue(leaks.isEmpty, "corpus/\(name).txt holds \(leaks.count) dev/test texts, "
                          + "e.g. line \(leaks.first?.line ?? 0): \(leaks.first?.text ?? "")")
            if let train = splitsOf[name]?.train {
                // The task's train remainder is mixed in (all but the few that equal a held-out sentence).
                XCTAssertGreaterThan(trainTextsFound, train.count * 99 / 100, "corpus/\(name).txt")
            }
        }
    }
}
