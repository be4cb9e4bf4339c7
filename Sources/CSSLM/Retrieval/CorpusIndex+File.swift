// The corpus index's file plumbing: a read-only memory mapping, and the payload checksum.
import Foundation

/// A read-only memory mapping of a whole file.
final class MappedFile {
    let bytes: UnsafeRawBufferPointer
    private let mapped: Bool

    init(path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw CorpusIndexError.unreadable(file: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw CorpusIndexError.unreadable(file: path, reason: String(cString: strerror(errno))) }
        let size = Int(info.st_size)
        guard size > 0 else {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            mapped = false
            return
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw CorpusIndexError.unreadable(file: path, reason: "mmap: \(String(cString: strerror(errno)))")
        }
        bytes = UnsafeRawBufferPointer(start: p, count: size)
        mapped = true
    }

    deinit {
        if mapped { munmap(UnsafeMutableRawPointer(mutating: bytes.baseAddress), bytes.count) }
    }
}

/// 64-bit FNV-1a over little-endian 8-byte words in 4 interleaved lanes (so the multiplies
/// overlap; ~50 ms for a 120 MB index), then the tail bytes and the length. Each step is a
/// bijection of a lane's state, so changing any one word always changes the result. Guards against
/// truncation, bit rot and partial writes, not against deliberate tampering.
func payloadChecksum(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
    let prime = FNV1a.prime
    var lanes: (UInt64, UInt64, UInt64, UInt64) = (FNV1a.offsetBasis, 0x84222325CBF29CE4, 0x9E37_79B9_7F4A_7C15, 0xD1B5_4A32_D192_ED03)
    let n = bytes.count
    var i = 0
    if let base = bytes.baseAddress {
        while i + 32 <= n {
            lanes.0 = (lanes.0 ^ base.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* prime
            lanes.1 = (lanes.1 ^ base.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self)) &* prime
            lanes.2 = (lanes.2 ^ base.loadUnaligned(fromByteOffset: i + 16, as: UInt64.self)) &* prime
            lanes.3 = (lanes.3 ^ base.loadUnaligned(fromByteOffset: i + 24, as: UInt64.self)) &* prime
            i += 32
        }
    }
    var h = CounterRandom.mix(lanes.0) ^ (CounterRandom.mix(lanes.1 &+ 1) &* 3) ^ (CounterRandom.mix(lanes.2 &+ 2) &* 5)
        ^ (CounterRandom.mix(lanes.3 &+ 3) &* 7)
    while i < n {
        h = (h ^ UInt64(bytes[i])) &* prime
        i += 1
    }
    return CounterRandom.mix(h ^ UInt64(n))
}

func hex64(_ v: UInt64) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: 16 - s.count) + s
}
