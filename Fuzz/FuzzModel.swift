// Fuzz targets for the model files: model.safetensors and config.json.
import Foundation

/// The bytes as a whole safetensors file: the header checks, then every tensor read in its own
/// dtype, written back as F32 and read again bit for bit, and loaded into a ParameterSet.
func fuzzSafetensors(_ input: [UInt8]) throws {
    let file = try SafetensorsFile(data: Data(input), path: "fuzz.safetensors")
    check(file.tensors.count <= InputLimits.maxTensorCount, "\(file.tensors.count) tensors passed the limit")
    var arrays: [(name: String, shape: [Int], values: [Float])] = []
    for name in file.names {
        let t = try file.info(name)
        check(t.byteRange.lowerBound >= 8 && t.byteRange.upperBound <= input.count,
              "tensor \(name): bytes \(t.byteRange) outside the \(input.count)-byte file")
        check(t.byteRange.count == t.elementCount * t.dtype.byteSize, "tensor \(name): size does not match its shape")
        check(t.shape.count <= InputLimits.maxTensorRank, "tensor \(name): rank \(t.shape.count) passed the limit")
        let values = try file.floats(name)
        check(values.count == t.elementCount, "tensor \(name): \(values.count) values for shape \(t.shape)")
        if t.dtype.isFloat {
            arrays.append((name, t.shape, values))
        } else {
            let ints = try file.ints(name)
            check(ints.count == t.elementCount, "tensor \(name): \(ints.count) ints for shape \(t.shape)")
        }
    }
    // What the writer writes, the reader reads back exactly (F32 keeps every bit, NaNs included).
    let buffers = arrays.map { FloatBuffer($0.values) }
    let entries = zip(arrays, buffers).map {
        SafetensorsEntry(name: $0.name, shape: $0.shape, values: UnsafeBufferPointer($1.buffer))
    }
    let again = mustSucceed("safetensors round trip") {
        let encoded = try withExtendedLifetime(buffers) { try SafetensorsWriter.encode(entries, metadata: file.metadata) }
        return try SafetensorsFile(data: encoded, path: "fuzz-roundtrip.safetensors")
    }
    check(again.metadata == file.metadata, "metadata changed in a round trip")
    check(again.names == arrays.map(\.name).sorted(), "names changed in a round trip")
    for a in arrays {
        check(again.tensors[a.name]?.shape == a.shape, "tensor \(a.name): shape changed in a round trip")
        check(mustSucceed("read back") { try again.floats(a.name) }.map(\.bitPattern) == a.values.map(\.bitPattern),
              "tensor \(a.name): values changed in a round trip")
    }
    // Loading into parameters rejects non-finite values unless asked not to.
    let parameters = ParameterSet(arrays.map { ($0.name, $0.shape) })
    let allFinite = arrays.allSatisfy { $0.values.allSatisfy(\.isFinite) }
    do {
        try parameters.load(from: file)
        check(allFinite, "a non-finite weight was loaded without an error")
    } catch {
        check(!allFinite, "load failed on finite weights: \(error)")
        mustSucceed("load allowing non-finite weights") { try parameters.load(from: file, allowNonFinite: true) }
    }
}

/// The bytes as config.json: load and validate; a valid config survives export and reload.
func fuzzModelConfig(_ input: [UInt8]) throws {
    let config = try BertConfig.load(from: scratchFile("config.json", input))
    let again = mustSucceed("config export round trip") {
        try BertConfig.load(from: scratchFile("config-export.json", try config.jsonData()))
    }
    var expected = config
    expected.modelType = "bert"                      // export always names the type
    expected.positionEmbeddingType = "absolute"
    check(again == expected, "config changed in an export round trip: \(config) vs \(again)")
}
