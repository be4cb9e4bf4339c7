// Reading and writing the safetensors format (HF): an 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the raw
// little-endian tensor bytes. Nothing in a file is trusted: the header size, every offset, dtype
// and shape are checked against the file's real size before any byte is read.
import Foundation

public enum SafetensorsDType: String, Sendable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16", f64 = "F64", i64 = "I64", i32 = "I32"
    case i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"

    public var byteSize: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8, .u8, .bool: return 1
        }
    }
    public var isFloat: Bool { self == .f32 || self == .f16 || self == .bf16 || self == .f64 }
}

/// A safetensors file opened for reading (memory-mapped).
public struct SafetensorsFile {
    public struct TensorInfo: Sendable {
        public let name: String
        public let dtype: SafetensorsDType
        public let shape: [Int]
        /// Byte range inside the file.
        public let byteRange: Range<Int>
        public var elementCount: Int { shape.reduce(1, *) }
    }

    public let path: String
    public let tensors: [String: TensorInfo]
    public let metadata: [String: String]
    private let data: Data

    public var names: [String] { tensors.keys.sorted() }

    public init(url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw CSSLMError("\(url.path): cannot read safetensors file (\(fileErrorReason(error, path: url.path)))")
        }
        try self.init(data: data, path: url.path)
    }

    /// A file already in memory (e.g. read once to check its checksum, or received from rank 0);
    /// `path` names it in errors.
    public init(data: Data, path: String) throws {
        self.path = path
        self.data = data
        (tensors, metadata) = try Self.parseHeader(data, path: path)
    }

    /// Parses and checks the header of `data` (the whole file).
    static func parseHeader(_ data: Data, path: String) throws -> ([String: TensorInfo], [String: String]) {
        func bad(_ what: String) -> CSSLMError {
            CSSLMError("\(path): not a valid safetensors file: \(what)",
                       hint: "the file may be truncated or in another format; re-run scripts/setup.sh or re-export it")
        }
        guard data.count >= 8 else { throw bad("\(data.count) bytes, shorter than the 8-byte header length") }
        var headerLen: UInt64 = 0
        for i in 0..<8 { headerLen |= UInt64(data[data.startIndex + i]) << (8 * UInt64(i)) }
        guard headerLen <= UInt64(InputLimits.maxHeaderBytes) else {
            throw bad("header length \(headerLen) exceeds the limit of \(InputLimits.describeBytes(InputLimits.maxHeaderBytes))")
        }
        guard headerLen <= UInt64(data.count - 8) else {
            throw bad("header length \(headerLen) runs past the end of the \(data.count)-byte file")
        }
        let dataStart = 8 + Int(headerLen)
        let headerBytes = data.subdata(in: (data.startIndex + 8)..<(data.startIndex + dataStart))
        guard let json = try? JSONSerialization.jsonObject(with: headerBytes),
              let dict = json as? [String: Any] else {
            throw bad("the header is not a JSON object")
        }
        let tensorCount = dict.count - (dict["__metadata__"] == nil ? 0 : 1)
        guard tensorCount <= InputLimits.maxTensorCount else {
            throw bad("\(tensorCount) tensors exceed the limit of \(InputLimits.maxTensorCount)")
        }
        var tensors: [String: TensorInfo] = [:]
        var metadata: [String: String] = [:]
        let payload = data.count - dataStart
        for (name, value) in dict {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else { throw bad("__metadata__ is not an object") }
                for (k, v) in m {
                    guard let s = v as? String else { throw bad("__metadata__ value '\(k)' is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard let entry = value as? [String: Any] else { throw bad("tensor '\(name)': entry is not an object") }
            guard let dt = entry["dtype"] as? String, let dtype = SafetensorsDType(rawValue: dt) else {
                throw bad("tensor '\(name)': unknown or missing dtype \(entry["dtype"] ?? "nil")")
            }
            guard let shapeAny = entry["shape"] as? [Any], shapeAny.count <= InputLimits.maxTensorRank else {
                throw bad("tensor '\(name)': missing shape or rank above \(InputLimits.maxTensorRank)")
            }
            var shape: [Int] = []
            var count = 1
            for s in shapeAny {
                guard let n = exactInteger(s), n >= 0 else {
                    throw bad("tensor '\(name)': shape entry \(s) is not a non-negative integer")
                }
                let (product, overflow) = count.multipliedReportingOverflow(by: n)
                guard !overflow, product <= payload else { throw bad("tensor '\(name)': shape \(shapeAny) is larger than the file") }
                count = product
                shape.append(n)
            }
            guard let offs = entry["data_offsets"] as? [Any], offs.count == 2 else {
                throw bad("tensor '\(name)': data_offsets missing or not a pair")
            }
            guard let b = exactInteger(offs[0]), let e = exactInteger(offs[1]), b >= 0, e >= b else {
                throw bad("tensor '\(name)': data_offsets [\(offs[0]), \(offs[1])] are not integers 0 <= begin <= end")
            }
            guard e <= payload else {
                throw bad("tensor '\(name)': data_offsets [\(b), \(e)] run past the \(payload) data bytes (truncated file?)")
            }
            guard e - b == count * dtype.byteSize else {
                throw bad("tensor '\(name)': \(e - b) bytes do not match shape \(shape) of \(dtype.rawValue)")
            }
            tensors[name] = TensorInfo(name: name, dtype: dtype, shape: shape,
                                       byteRange: (dataStart + Int(b))..<(dataStart + Int(e)))
        }
        return (tensors, metadata)
    }

    public func info(_ name: String) throws -> TensorInfo {
        guard let t = tensors[name] else {
            throw CSSLMError("\(path): no tensor named '\(name)'",
                             hint: "the file has \(tensors.count) tensors, e.g. \(names.prefix(3).joined(separator: ", "))")
        }
        return t
    }

    /// The tensor stored as `prefix + name` for the first of `prefixes` the file has, or nil.
    public func find(_ name: String, prefixes: [String]) -> TensorInfo? {
        prefixes.lazy.compactMap { tensors[$0 + name] }.first
    }

    /// Throws unless tensor `t` is a float tensor of shape `expectedShape`.
    public func checkWeight(_ t: TensorInfo, shape expectedShape: [Int]) throws {
        if expectedShape != t.shape {
            throw CSSLMError("\(path): tensor '\(t.name)' has shape \(t.shape), expected \(expectedShape)",
                             hint: "the weights do not belong to a model with this config.json")
        }
        guard t.dtype.isFloat else {
            throw CSSLMError("\(path): tensor '\(t.name)' has dtype \(t.dtype.rawValue), expected a float type (F32, F16, BF16)")
        }
    }

    /// Copies tensor `name` as Float into `destination` (count elements), converting F16/BF16/F64.
    /// Throws when the shape differs from `expectedShape` (if given) or the dtype is not a float.
    public func read(_ name: String, into destination: UnsafeMutablePointer<Float>, expectedShape: [Int]? = nil) throws {
        let t = try info(name)
        try checkWeight(t, shape: expectedShape ?? t.shape)
        try convert(t, into: destination)
    }

    /// The tensor as Floats (any numeric dtype).
    public func floats(_ name: String) throws -> [Float] {
        let t = try info(name)
        var out = [Float](repeating: 0, count: t.elementCount)
        try out.withUnsafeMutableBufferPointer { try convert(t, into: $0.baseAddress!) }
        return out
    }

    /// The tensor as Ints (integer dtypes only).
    public func ints(_ name: String) throws -> [Int] {
        let t = try info(name)
        guard !t.dtype.isFloat else {
            throw CSSLMError("\(path): tensor '\(name)' is \(t.dtype.rawValue), not an integer tensor")
        }
        return intsChecked(t)
    }

    private func intsChecked(_ t: TensorInfo) -> [Int] {
        data.withUnsafeBytes { raw -> [Int] in
            let p = raw.baseAddress! + t.byteRange.lowerBound
            let n = t.elementCount
            switch t.dtype {
            case .i64: return (0..<n).map { Int(Int64(littleEndian: p.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self))) }
            case .i32: return (0..<n).map { Int(Int32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self))) }
            case .i16: return (0..<n).map { Int(Int16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * $0, as: Int16.self))) }
            case .i8: return (0..<n).map { Int(p.load(fromByteOffset: $0, as: Int8.self)) }
            default: return (0..<n).map { Int(p.load(fromByteOffset: $0, as: UInt8.self)) }
            }
        }
    }

    private func convert(_ t: TensorInfo, into dst: UnsafeMutablePointer<Float>) throws {
        let n = t.elementCount
        data.withUnsafeBytes { raw in
            let p = raw.baseAddress! + t.byteRange.lowerBound
            switch t.dtype {
            case .f32:
                for i in 0..<n { dst[i] = Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
            case .f16:
                for i in 0..<n { dst[i] = halfToFloat(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
            case .bf16:
                for i in 0..<n { dst[i] = Float(bitPattern: UInt32(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16) }
            case .f64:
                for i in 0..<n { dst[i] = Float(Double(bitPattern: UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))) }
            case .i64:
                for i in 0..<n { dst[i] = Float(Int64(littleEndian: p.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))) }
            case .i32:
                for i in 0..<n { dst[i] = Float(Int32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))) }
            case .i16:
                for i in 0..<n { dst[i] = Float(Int16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))) }
            case .i8:
                for i in 0..<n { dst[i] = Float(p.load(fromByteOffset: i, as: Int8.self)) }
            case .u8, .bool:
                for i in 0..<n { dst[i] = Float(p.load(fromByteOffset: i, as: UInt8.self)) }
            }
        }
    }
}

/// The value of a JSON number that is exactly an integer within Int's range; nil for booleans,
/// fractions and numbers too large for an Int (which NSNumber's `intValue` would wrap silently).
func exactInteger(_ value: Any) -> Int? {
    guard let n = value as? NSNumber, !(n is NSDecimalNumber) else { return nil }
    switch String(cString: n.objCType) {
    case "c", "B":
        return nil    // JSON true / false
    case "d", "f":
        let d = n.doubleValue
        return d == d.rounded() && abs(d) <= 0x1p53 ? Int(d) : nil
    case "Q", "L", "I", "S", "C":
        return n.uint64Value <= UInt64(Int.max) ? Int(n.uint64Value) : nil
    default:
        return Int(exactly: n.int64Value)
    }
}

/// IEEE 754 binary16 → binary32.
@inline(__always)
func halfToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exp = Int((h >> 10) & 0x1F)
    let mant = UInt32(h & 0x3FF)
    if exp == 0 {
        return Float(bitPattern: sign) + (sign != 0 ? -1 : 1) * Float(mant) * 0x1p-24
    }
    if exp == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mant << 13)) }
    return Float(bitPattern: sign | (UInt32(exp + 112) << 23) | (mant << 13))
}

/// One tensor to write: F32 data and its shape.
public struct SafetensorsEntry {
    public let name: String
    public let shape: [Int]
    public let values: UnsafeBufferPointer<Float>
    public init(name: String, shape: [Int], values: UnsafeBufferPointer<Float>) {
        precondition(shape.reduce(1, *) == values.count, "\(name): shape \(shape) does not match \(values.count) values")
        self.name = name; self.shape = shape; self.values = values
    }
}

public enum SafetensorsWriter {
    /// The bytes of a safetensors file holding `entries` (F32, in the order given) and `metadata`.
    public static func encode(_ entries: [SafetensorsEntry], metadata: [String: String] = [:]) throws -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for e in entries {
            precondition(header[e.name] == nil, "duplicate tensor name \(e.name)")
            let bytes = e.values.count * 4
            header[e.name] = ["dtype": "F32", "shape": e.shape, "data_offsets": [offset, offset + bytes]] as [String: Any]
            offset += bytes
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad the header with spaces so the tensor data starts 8-byte aligned, as HF's writer does.
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data(capacity: 8 + json.count + offset)
        var len = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &len) { out.append(contentsOf: $0) }
        out.append(json)
        for e in entries {
            #if _endian(little)
            out.append(UnsafeBufferPointer(start: e.values.baseAddress, count: e.values.count))
            #else
            for v in e.values { var b = v.bitPattern.littleEndian; withUnsafeBytes(of: &b) { out.append(contentsOf: $0) } }
            #endif
        }
        return out
    }

    /// Writes `entries` to `url` atomically (writeAtomically), so a crash never leaves a
    /// half-written file under the final name.
    public static func write(_ entries: [SafetensorsEntry], metadata: [String: String] = [:], to url: URL) throws {
        let data = try encode(entries, metadata: metadata)
        try writeAtomically(data, to: url)
    }
}
