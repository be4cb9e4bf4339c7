// Loading and saving models: safetensors round trips with HF names, and every kind of bad file
// gives an error naming the file and the tensor or field.
import Foundation
import XCTest
@testable import CSSLM

final class ModelFileTests: XCTestCase {
    var tmp: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("csslm-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    private func tinyFolder(config: String? = nil, tensors: [String: [Int]]? = nil) throws -> URL {
        let dir = tmp.appendingPathComponent("model-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let cfg = BertConfig(vocabSize: 20, hiddenSize: 8, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 16,
                             maxPositionEmbeddings: 10)
        try (config.map { Data($0.utf8) } ?? cfg.jsonData()).write(to: dir.appendingPathComponent("config.json"))
        let model = BertClassifier(config: cfg, numLabels: 2, seed: 3)
        try model.saveEncoder(to: dir.appendingPathComponent("model.safetensors"))
        return dir
    }

    private func writeSafetensors(_ arrays: [(String, [Int], [Float])], to url: URL) throws {
        let buffers = arrays.map { FloatBuffer($0.2) }
        let entries = zip(arrays, buffers).map { SafetensorsEntry(name: $0.0, shape: $0.1, values: UnsafeBufferPointer($1.buffer)) }
        try withExtendedLifetime(buffers) { try SafetensorsWriter.write(entries, to: url) }
    }

    func testMiniLMSavesBackUnderTheSameHFNamesAndValues() throws {
        let dir = try TestPaths.miniLM()
        let original = try SafetensorsFile(url: dir.appendingPathComponent("model.safetensors"))
        let model = try BertClassifier(modelDirectory: dir, numLabels: 2)
        let out = tmp.appendingPathComponent("model.safetensors")
        try model.saveEncoder(to: out)
        let saved = try SafetensorsFile(url: out)
        // Integer buffers (embeddings.position_ids: 0..<512, which HF recomputes) are not weights.
        let weights = try original.names.filter { try original.info($0).dtype.isFloat }
        XCTAssertEqual(Set(saved.names), Set(weights), "same tensor names, pooler included")
        XCTAssertTrue(weights.contains("pooler.dense.weight"))
        for name in weights {
            XCTAssertEqual(try saved.info(name).shape, try original.info(name).shape, name)
            XCTAssertEqual(try saved.floats(name), try original.floats(name), name)
        }
    }

    func testWeightsLoadWithOrWithoutTheBertPrefix() throws {
        let dir = try tinyFolder()
        let file = try SafetensorsFile(url: dir.appendingPathComponent("model.safetensors"))
        // Rewrite with every name under "bert.", as BertForSequenceClassification saves them.
        var arrays: [(String, [Int], [Float])] = []
        for n in file.names { arrays.append(("bert." + n, try file.info(n).shape, try file.floats(n))) }
        try writeSafetensors(arrays, to: dir.appendingPathComponent("model.safetensors"))
        let a = try BertClassifier(modelDirectory: dir, numLabels: 2)
        let b = try BertClassifier(modelDirectory: try tinyFolderCopy(of: file), numLabels: 2)
        XCTAssertEqual(Array(a.parameters.values.buffer[0..<a.parameters.offset("classifier.dense.weight")]),
                       Array(b.parameters.values.buffer[0..<b.parameters.offset("classifier.dense.weight")]))
    }

    private func tinyFolderCopy(of file: SafetensorsFile) throws -> URL {
        let dir = try tinyFolder()
        try FileManager.default.removeItem(at: dir.appendingPathComponent("model.safetensors"))
        try FileManager.default.copyItem(atPath: file.path, toPath: dir.appendingPathComponent("model.safetensors").path)
        return dir
    }

    func testTruncatedAndForeignFilesAreNamed() throws {
        let dir = try tinyFolder()
        let path = dir.appendingPathComponent("model.safetensors")
        let bytes = try Data(contentsOf: path)
        try bytes.prefix(bytes.count - 100).write(to: path)
        assertThrows({ _ = try BertClassifier(modelDirectory: dir, numLabels: 2) },
                     containing: [path.path, "truncated", "hint"])
        try Data("PK\u{3}\u{4} this is a zip, not safetensors".utf8).write(to: path)
        assertThrows({ _ = try BertClassifier(modelDirectory: dir, numLabels: 2) }, containing: [path.path, "header length"])
        try Data([1, 2, 3]).write(to: path)
        assertThrows({ _ = try SafetensorsFile(url: path) }, containing: [path.path, "shorter than"])
        var header = Data("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 4]}}".utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        var len = UInt64(header.count).littleEndian
        var file = Data(bytes: &len, count: 8); file.append(header); file.append(Data(count: 8))
        try file.write(to: path)
        assertThrows({ _ = try SafetensorsFile(url: path) }, containing: [path.path, "tensor 'a'", "do not match shape"])
    }

    func testMissingTensorWrongShapeAndWrongDTypeNameTheTensorAndFile() throws {
        let dir = try tinyFolder()
        let path = dir.appendingPathComponent("model.safetensors")
        let file = try SafetensorsFile(url: path)
        func rewrite(_ edit: (String, [Int], [Float]) -> (String, [Int], [Float])?) throws {
            var arrays: [(String, [Int], [Float])] = []
            for n in file.names { if let e = edit(n, try file.info(n).shape, try file.floats(n)) { arrays.append(e) } }
            try writeSafetensors(arrays, to: path)
        }
        try rewrite { $0 == "encoder.layer.0.output.dense.weight" ? nil : ($0, $1, $2) }
        assertThrows({ _ = try BertClassifier(modelDirectory: dir, numLabels: 2) },
                     containing: [path.path, "missing tensor 'encoder.layer.0.output.dense.weight'"])
        let fresh = try tinyFolder()
        let freshFile = try SafetensorsFile(url: fresh.appendingPathComponent("model.safetensors"))
        var arrays: [(String, [Int], [Float])] = []
        for n in freshFile.names {
            let s = try freshFile.info(n).shape
            arrays.append(n == "embeddings.LayerNorm.bias" ? (n, [4, 2], try freshFile.floats(n)) : (n, s, try freshFile.floats(n)))
        }
        try writeSafetensors(arrays, to: fresh.appendingPathComponent("model.safetensors"))
        assertThrows({ _ = try BertClassifier(modelDirectory: fresh, numLabels: 2) },
                     containing: ["tensor 'embeddings.LayerNorm.bias' has shape [4, 2], expected [8]"])
        // An integer tensor where a weight belongs.
        let fx = try SafetensorsFile(url: try TestPaths.fixture("tiny_bert.safetensors"))
        var dummy = [Float](repeating: 0, count: 3)
        assertThrows({ try fx.read("input_ids", into: &dummy) }, containing: ["tensor 'input_ids' has dtype I64", "tiny_bert.safetensors"])
    }

    func testBadConfigFieldsAreNamed() throws {
        let base = String(data: try BertConfig(vocabSize: 20, hiddenSize: 8, numHiddenLayers: 1, numAttentionHeads: 2,
                                               intermediateSize: 16).jsonData(), encoding: .utf8)!
        let cases: [(String, String)] = [
            (base.replacingOccurrences(of: "\"gelu\"", with: "\"relu\""), "hidden_act"),
            (base.replacingOccurrences(of: "\"num_attention_heads\" : 2", with: "\"num_attention_heads\" : 3"), "hidden_size"),
            (base.replacingOccurrences(of: "\"hidden_size\" : 8,", with: ""), "missing field 'hidden_size'"),
            (base.replacingOccurrences(of: "\"vocab_size\" : 20", with: "\"vocab_size\" : \"many\""), "vocab_size"),
            ("{ not json", "not a valid JSON config"),
        ]
        for (text, field) in cases {
            let dir = try tinyFolder(config: text)
            assertThrows({ _ = try BertClassifier(modelDirectory: dir, numLabels: 2) },
                         containing: [dir.appendingPathComponent("config.json").path, field])
        }
        assertThrows({ _ = try BertClassifier(modelDirectory: tmp.appendingPathComponent("nope"), numLabels: 2) },
                     containing: ["nope/config.json", "cannot read"])
    }

    func testOutOfVocabularyIdsAreRejectedBeforeTheyIndexMemory() throws {
        let model = BertClassifier(config: BertConfig(vocabSize: 20, hiddenSize: 8, numHiddenLayers: 1,
                                                      numAttentionHeads: 2, intermediateSize: 16), numLabels: 2)
        let batch = try TokenBatch(sequences: [[2, 25, 3]], sepId: 3)
        assertThrows({ _ = try model.logits(batch) }, containing: ["token id 25", "outside the vocabulary"])
    }
}
