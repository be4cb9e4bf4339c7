// Hand-written bad inputs for every reader (issue 9): truncated and oversized files, negative and
// overflowing offsets, non-finite weights, invalid UTF-8, labels that are numbers vs strings,
// every limit of InputLimits, and file names read from files. Each must give an error that names
// the file and the place (line, field or tensor). Cases already pinned down by ModelFileTests,
// DataReaderTests and TokenizerTests are not repeated here.
import Foundation
import XCTest
@testable import CSSLM

final class BadInputTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("csslm-bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    @discardableResult
    private func write(_ name: String, _ bytes: Data) throws -> URL {
        let url = directory.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try bytes.write(to: url)
        return url
    }

    @discardableResult
    private func write(_ name: String, _ text: String) throws -> URL { try write(name, Data(text.utf8)) }

    /// A file of `size` zero bytes that takes no disk space.
    private func sparse(_ name: String, size: Int) throws -> URL {
        let url = try write(name, Data())
        let handle = try FileHandle(forWritingTo: url)
        try handle.truncate(atOffset: UInt64(size))
        try handle.close()
        return url
    }

    private func assertError(_ parts: [String], file: StaticString = #filePath, line: UInt = #line,
                             _ body: () throws -> Void) {
        assertThrows(body, containing: parts, file: file, line: line)
    }

    /// A safetensors file: the 8-byte header length, `header`, then `payload` zero bytes.
    private func safetensors(_ header: String, payload: Int = 16, declaredLength: UInt64? = nil) -> Data {
        var length = (declaredLength ?? UInt64(header.utf8.count)).littleEndian
        var data = Data(bytes: &length, count: 8)
        data.append(Data(header.utf8))
        data.append(Data(count: payload))
        return data
    }

    // MARK: safetensors

    func testSafetensorsCutInsideTheHeaderNamesTheFile() throws {
        let full = safetensors("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}")
        let url = try write("cut.safetensors", full.prefix(30))
        assertError([url.path, "header length", "runs past the end of the 30-byte file"]) { _ = try SafetensorsFile(url: url) }
    }

    func testOversizedHeaderIsRefusedBeforeItIsRead() throws {
        let url = try write("huge-header.safetensors", safetensors("{}", declaredLength: UInt64(InputLimits.maxHeaderBytes) + 1))
        assertError([url.path, "header length 104857601", "limit of 100 MiB"]) { _ = try SafetensorsFile(url: url) }
        let wrapped = try write("wrapped.safetensors", safetensors("{}", declaredLength: UInt64.max))
        assertError([wrapped.path, "header length 18446744073709551615"]) { _ = try SafetensorsFile(url: wrapped) }
    }

    func testNegativeOverflowingAndNonIntegerOffsetsNameTheTensor() throws {
        let cases: [(offsets: String, shape: String, expected: String)] = [
            ("[-4, 4]", "[1]", "data_offsets [-4, 4] are not integers"),
            ("[8, 4]", "[1]", "data_offsets [8, 4] are not integers 0 <= begin <= end"),
            // 2^64 + 4: NSNumber's intValue wraps it to 4, which once read as a valid 4-byte tensor.
            ("[0, 18446744073709551620]", "[1]", "data_offsets [0, 18446744073709551620]"),
            ("[0, 9223372036854775807]", "[1]", "run past the 16 data bytes"),
            ("[0.5, 4.5]", "[1]", "are not integers"),
            ("[false, 4]", "[1]", "are not integers"),
            ("[0]", "[1]", "data_offsets missing or not a pair"),
            ("[0, 4]", "[36893488147419103236]", "shape entry"),
            ("[0, 4]", "[true]", "shape entry"),
            ("[0, 4]", "[4611686018427387904, 4]", "is larger than the file"),
        ]
        for (i, c) in cases.enumerated() {
            let url = try write("offsets\(i).safetensors",
                                safetensors("{\"w\": {\"dtype\": \"F32\", \"shape\": \(c.shape), \"data_offsets\": \(c.offsets)}}"))
            assertError([url.path, "tensor 'w'", c.expected]) { _ = try SafetensorsFile(url: url) }
        }
    }

    func testTensorCountAndRankLimitsAreNamed() throws {
        let rank = try write("rank.safetensors", safetensors(
            "{\"deep\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 4]}}"))
        assertError([rank.path, "tensor 'deep'", "rank above 8"]) { _ = try SafetensorsFile(url: rank) }
        let entries = (0...InputLimits.maxTensorCount).map { "\"t\($0)\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}" }
        let many = try write("many.safetensors", safetensors("{" + entries.joined(separator: ",") + "}"))
        assertError([many.path, "100001 tensors exceed the limit of 100000"]) { _ = try SafetensorsFile(url: many) }
    }

    // MARK: model folders

    /// A tiny model folder (vocab 20, hidden 8, 1 layer) saved by BertClassifier.
    private func tinyModel() throws -> (dir: URL, config: BertConfig) {
        let dir = directory.appendingPathComponent("model-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let config = BertConfig(vocabSize: 20, hiddenSize: 8, numHiddenLayers: 1, numAttentionHeads: 2,
                                intermediateSize: 16, maxPositionEmbeddings: 10)
        try config.jsonData().write(to: dir.appendingPathComponent("config.json"))
        try BertClassifier(config: config, numLabels: 2, seed: 1).saveEncoder(to: dir.appendingPathComponent("model.safetensors"))
        return (dir, config)
    }

    /// Rewrites safetensors file `url` with `edit` applied to tensor `name`'s values.
    private func rewrite(_ url: URL, tensor name: String, _ edit: (inout [Float]) -> Void) throws {
        let file = try SafetensorsFile(url: url)
        var arrays = try file.names.map { ($0, try file.info($0).shape, try file.floats($0)) }
        let i = try XCTUnwrap(arrays.firstIndex { $0.0 == name })
        edit(&arrays[i].2)
        let buffers = arrays.map { FloatBuffer($0.2) }
        let entries = zip(arrays, buffers).map { SafetensorsEntry(name: $0.0, shape: $0.1, values: UnsafeBufferPointer($1.buffer)) }
        try withExtendedLifetime(buffers) { try SafetensorsWriter.write(entries, to: url) }
    }

    func testNonFiniteWeightIsAnErrorNamingTheTensorAndElementUnlessAllowed() throws {
        let (dir, _) = try tinyModel()
        let weights = dir.appendingPathComponent("model.safetensors")
        let name = "encoder.layer.0.attention.self.query.weight"   // [8, 8]
        try rewrite(weights, tensor: name) { $0[10] = .nan }
        assertError([weights.path, "tensor '\(name)'", "nan", "element [1, 2]", "allowNonFinite"]) {
            _ = try BertClassifier(modelDirectory: dir, numLabels: 2)
        }
        let allowed = try BertClassifier(modelDirectory: dir, numLabels: 2, allowNonFiniteWeights: true)
        XCTAssertTrue(allowed.parameters.value(name)[10].isNaN)

        // The heads file is checked the same way.
        try rewrite(weights, tensor: name) { $0[10] = 0 }
        let trained = BertClassifier(config: allowed.config, numLabels: 2, seed: 2)
        let heads = dir.appendingPathComponent("heads.safetensors")
        try trained.saveHeads(to: heads)
        try rewrite(heads, tensor: "classifier.dense.bias") { $0[3] = -.infinity }
        assertError([heads.path, "tensor 'classifier.dense.bias'", "-inf", "element [3]"]) {
            _ = try BertClassifier(modelDirectory: dir, numLabels: 2)
        }
    }

    func testConfigSizesAreCheckedAgainstTheWeightsBeforeAnythingIsAllocated() throws {
        let (dir, _) = try tinyModel()
        // As stated, ~180 billion parameters: allocating first would abort the process.
        let huge = BertConfig(vocabSize: 1_000_000, hiddenSize: 8192, numHiddenLayers: 128, numAttentionHeads: 64,
                              intermediateSize: 65_536, maxPositionEmbeddings: 8192)
        try huge.jsonData().write(to: dir.appendingPathComponent("config.json"))
        assertError([dir.appendingPathComponent("model.safetensors").path, "missing tensor 'encoder.layer.1."]) {
            _ = try BertClassifier(modelDirectory: dir, numLabels: 2)
        }
        var wide = huge
        wide.numHiddenLayers = 1
        try wide.jsonData().write(to: dir.appendingPathComponent("config.json"))
        assertError(["tensor 'embeddings.word_embeddings.weight' has shape [20, 8], expected [1000000, 8192]"]) {
            _ = try BertClassifier(modelDirectory: dir, numLabels: 2)
        }
    }

    func testModelConfigLimitsNameTheField() throws {
        let base = BertConfig(vocabSize: 20, hiddenSize: 8, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 16)
        let cases: [(WritableKeyPath<BertConfig, Int>, Int, String)] = [
            (\.maxPositionEmbeddings, 100_000, "max_position_embeddings' is 100000, above the limit of 8192"),
            (\.typeVocabSize, 5000, "type_vocab_size' is 5000, above the limit of 1024"),
            (\.intermediateSize, 100_000, "intermediate_size' is 100000, above the limit of 65536"),
            (\.vocabSize, 1_000_001, "vocab_size' is 1000001, above the limit of 1000000"),
        ]
        for (i, (field, value, expected)) in cases.enumerated() {
            var config = base
            config[keyPath: field] = value
            let url = try write("limits\(i)/config.json", try config.jsonData())
            assertError([url.path, expected]) { _ = try BertConfig.load(from: url) }
        }
    }

    func testOversizedJSONConfigFilesAreRefusedWithoutReadingThemWhole() throws {
        let size = InputLimits.maxJSONConfigBytes + 1
        let config = try sparse("big/config.json", size: size)
        assertError([config.path, "larger than 64 MiB"]) { _ = try BertConfig.load(from: config) }
        let run = try sparse("big/run.json", size: size)
        assertError([run.path, "larger than 64 MiB"]) { _ = try TrainConfig.load(from: run) }
        try write("tok/vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n")
        let tokenizerConfig = try sparse("tok/tokenizer_config.json", size: size)
        assertError([tokenizerConfig.path, "larger than 64 MiB"]) {
            _ = try WordPieceTokenizer(modelDirectory: directory.appendingPathComponent("tok"))
        }
    }

    // MARK: vocabulary

    func testInvalidUTF8InTheVocabularyNamesTheLine() throws {
        var bytes = Data("[PAD]\n[UNK]\nok\n".utf8)
        bytes.append(contentsOf: [0x63, 0x61, 0x66, 0xE9, 0x0A])   // Latin-1 "café"
        let url = try write("latin1/vocab.txt", bytes)
        assertError(["\(url.path) line 4: not valid UTF-8"]) { _ = try WordPieceVocabulary(contentsOf: url) }
    }

    func testVocabularyLimitsNameTheLine() throws {
        let long = try write("long/vocab.txt", "[PAD]\n" + String(repeating: "x", count: InputLimits.maxTokenBytes + 1) + "\n")
        assertError(["\(long.path) line 2: the token is 1025 bytes, above the limit of 1024"]) {
            _ = try WordPieceVocabulary(contentsOf: long)
        }
        let lines = (0...InputLimits.maxVocabularySize).map { "t\($0)" }.joined(separator: "\n")
        let big = try write("big/vocab.txt", lines)
        assertError(["\(big.path) line 1000001: more than 1000000 tokens"]) { _ = try WordPieceVocabulary(contentsOf: big) }
    }

    // MARK: datasets

    func testInvalidUTF8InCSVLabelsAndJSONListNamesTheLine() throws {
        let latin1: [UInt8] = [0x63, 0x61, 0x66, 0xE9]
        var csv = Data("text,label\nfine,a\n".utf8)
        csv.append(contentsOf: latin1)
        csv.append(Data(",a\n".utf8))
        let csvURL = try write("latin1.csv", csv)
        assertError(["\(csvURL.path):3:", "not valid UTF-8"]) { _ = try LabeledDataset.readCSV(at: csvURL) }

        var labels = Data("neg\n".utf8)
        labels.append(contentsOf: latin1)
        let labelsURL = try write("labels.txt", labels)
        assertError(["\(labelsURL.path):2:", "not valid UTF-8"]) { _ = try LabeledDataset.readLabels(at: labelsURL) }

        var list = Data("[\n{\"sentence\": \"ok\", \"sentiment\": 0},\n{\"sentence\": \"".utf8)
        list.append(contentsOf: latin1)
        list.append(Data("\", \"sentiment\": 0}\n]".utf8))
        let listURL = try write("latin1.json", list)
        assertError(["\(listURL.path):3:", "not valid JSON"]) { _ = try LabeledDataset.readReferenceJSON(at: listURL) }
    }

    func testANumberLabelThatCouldMeanANameOrAnIndexIsAnError() throws {
        // Star ratings: labels.txt lists "1"..."5", so 1 could be class 0 (the name) or class 1 (the index).
        let stars = ["1", "2", "3", "4", "5"]
        let url = try write("stars.jsonl", "{\"text\": \"great\", \"label\": \"5\"}\n{\"text\": \"bad\", \"label\": 1}\n")
        assertError(["\(url.path):2:", "label 1 is a number", "the name \"1\" (class 0)", "class 1 is \"2\""]) {
            _ = try LabeledDataset.readJSONL(at: url, labels: stars)
        }
        let list = try write("stars.json", "[{\"sentence\": \"ok\", \"sentiment\": 3}]")
        assertError(["\(list.path):1:", "label 3 is a number"]) { _ = try LabeledDataset.readReferenceJSON(at: list, labels: stars) }

        // Where both readings agree (names "0"..."2"), or the names are words, a number is an index.
        let agree = try write("agree.jsonl", "{\"text\": \"a\", \"label\": 1}\n{\"text\": \"b\", \"label\": \"1\"}\n")
        XCTAssertEqual(try LabeledDataset.readJSONL(at: agree, labels: ["0", "1", "2"]).dataset.examples.map(\.label), [1, 1])
        let words = try write("words.jsonl", "{\"text\": \"a\", \"label\": 1}\n{\"text\": \"b\", \"label\": \"neg\"}\n")
        XCTAssertEqual(try LabeledDataset.readJSONL(at: words, labels: ["neg", "pos"]).dataset.examples.map(\.label), [1, 0])
        let fraction = try write("fraction.jsonl", "{\"text\": \"a\", \"label\": 1.5}\n")
        assertError(["\(fraction.path):1:", "string name or an integer"]) {
            _ = try LabeledDataset.readJSONL(at: fraction, labels: ["neg", "pos"])
        }
    }

    func testLinesOverTheLimitNameTheFileAndLine() throws {
        let long = String(repeating: "x", count: InputLimits.maxLineBytes)
        let limit = "above the limit of 1 MiB (1048576 bytes)"
        let jsonl = try write("long.jsonl", "{\"text\": \"a\", \"label\": 0}\n{\"text\": \"\(long)\", \"label\": 0}\n")
        assertError(["\(jsonl.path):2:", "the line is \(long.count + 24) bytes", limit]) { _ = try LabeledDataset.readJSONL(at: jsonl) }
        let csv = try write("long.csv", "text,label\n\"\(long)\",a\n")
        assertError(["\(csv.path):2:", "the record is", limit]) { _ = try LabeledDataset.readCSV(at: csv) }
        let list = try write("long.json", "[{\"sentence\": \"a\", \"sentiment\": 0},\n {\"sentence\": \"\(long)\", \"sentiment\": 0}]")
        assertError(["\(list.path):2:", "the element is", limit]) { _ = try LabeledDataset.readReferenceJSON(at: list) }
        let labels = try write("long-labels.txt", "a\n\(long)x\n")
        assertError(["\(labels.path):2:", "the line is", limit]) { _ = try LabeledDataset.readLabels(at: labels) }
        // The corpus reader streams: a file with no newline at all must not grow its buffer forever.
        let corpus = try write("long-corpus.txt", "first line\n" + long + long)
        assertError(["\(corpus.path):2:", "the line is", limit]) {
            _ = try UnlabeledCorpusReader.read(url: corpus)
        }
    }

    func testLabelCountLimitsNameTheLine() throws {
        let max = InputLimits.maxLabelCount
        let names = try write("many-labels.txt", (0...max).map { "c\($0)" }.joined(separator: "\n"))
        assertError(["\(names.path):\(max + 1):", "more than \(max) labels"]) { _ = try LabeledDataset.readLabels(at: names) }
        let index = try write("index.jsonl", "{\"text\": \"a\", \"label\": 0}\n{\"text\": \"b\", \"label\": \(max)}\n")
        assertError(["\(index.path):2:", "label index \(max) is beyond the limit of \(max) classes"]) {
            _ = try LabeledDataset.readJSONL(at: index)
        }
        let distinct = try write("distinct.jsonl", (0...max).map { "{\"text\": \"t\", \"label\": \"c\($0)\"}" }.joined(separator: "\n"))
        assertError(["\(distinct.path):\(max + 1):", "more than \(max) distinct labels"]) {
            _ = try LabeledDataset.readJSONL(at: distinct)
        }
    }

    // MARK: run config

    func testRunConfigErrorsNameTheFileAndField() throws {
        let unknown = try write("unknown.json", "{\"epochs\": 2, \"learning_rate\": 0.1}")
        assertError([unknown.path, "unknown field 'learning_rate'"]) { _ = try TrainConfig.load(from: unknown) }
        let type = try write("type.json", "{\"epochs\": \"ten\"}")
        assertError([type.path, "field 'epochs' has the wrong type"]) { _ = try TrainConfig.load(from: type) }
        let seed = try write("seed.json", "{\"seed\": -1}")
        assertError([seed.path, "seed"]) { _ = try TrainConfig.load(from: seed) }
        let array = try write("array.json", "[1, 2]")
        assertError([array.path, "not a JSON object"]) { _ = try TrainConfig.load(from: array) }
        let kind = try write("kind.json", "{\"contrastive\": \"triplet\"}")
        assertError([kind.path, "contrastive"]) { _ = try TrainConfig.load(from: kind) }
        for tau: Float in [0, -0.1, .infinity] {
            var config = TrainConfig()
            config.temperature = tau
            assertError(["field 'temperature' (--temperature) must be in (0, 100]"]) { try config.validate() }
        }
    }

    // MARK: file names read from files

    func testNamesReadFromFilesStayInsideTheirFolder() throws {
        let folder = directory.appendingPathComponent("checkpoint")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let source = folder.appendingPathComponent("MANIFEST").path
        XCTAssertEqual(try containedFile("weights/model.safetensors", in: folder, source: source).path,
                       folder.appendingPathComponent("weights/model.safetensors").path)
        for bad in ["", "/etc/passwd", "../run.json", "a/../../b", "a//b", "./a", "a/", "a\u{0}b"] {
            assertError([source, "file name \(String(reflecting: bad))"]) { _ = try containedFile(bad, in: folder, source: source) }
        }
        // A symbolic link inside the folder that leads out of it.
        try FileManager.default.createSymbolicLink(atPath: folder.appendingPathComponent("escape").path,
                                                   withDestinationPath: directory.path)
        assertError([source, "\"escape/x\"", "through a symbolic link"]) {
            _ = try containedFile("escape/x", in: folder, source: source)
        }
    }

    func testTokenizerReadsOnlyTheFixedFileNamesOfItsFolder() throws {
        // HF config files may name other files; none of those names is ever followed.
        try write("outside/vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nsecret\n")
        let vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n"
        try write("model/vocab.txt", vocab)
        try write("model/tokenizer_config.json", """
            {"vocab_file": "\(directory.appendingPathComponent("outside/vocab.txt").path)",
             "tokenizer_file": "../outside/tokenizer.json", "name_or_path": "../outside"}
            """)
        try write("model/special_tokens_map.json", "{\"vocab_file\": \"../outside/vocab.txt\"}")
        let tokenizer = try WordPieceTokenizer(modelDirectory: directory.appendingPathComponent("model"))
        XCTAssertEqual(tokenizer.vocabulary.tokens, vocab.split(separator: "\n").map(String.init))
        XCTAssertEqual(tokenizer.tokenize("hello secret"), ["hello", "[UNK]"])
    }
}
