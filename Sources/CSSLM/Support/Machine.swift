// What the process runs on: the CPU (cpuid through Sources/CCPU, the model name and clock from
// /proc/cpuinfo), its fp32 peak, and the OpenBLAS core chosen for it. The core check itself runs
// before main (Sources/CCPU/blas_startup.c); this reports it: once in the log (`BLASCore.logOnce`,
// called by `RankLogHandler.bootstrap`), in `csslm doctor` and `csslm --version`, and in the bench.
import CBLAS
import CCPU
import CMPI
import Foundation
import Logging

/// The CPU's vector instruction sets, as cpuid reports them with the OS's register-state support.
public struct CPUFeatures: Equatable, Sendable {
    public var vendor: String
    public var family: Int, model: Int, stepping: Int
    /// The extensions present, named as Linux's /proc/cpuinfo names them except `sse3` ("pni"
    /// there): sse2 sse3 ssse3 sse4_1 sse4_2 avx fma avx2 avx512f avx512dq avx512cd avx512bw
    /// avx512vl avx512_vnni avx512_bf16 amx_tile amx_bf16.
    public var flags: Set<String>

    public static let knownFlags = ["sse2", "sse3", "ssse3", "sse4_1", "sse4_2", "avx", "fma", "avx2", "avx512f", "avx512dq",
                                    "avx512cd", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16"]

    public init(vendor: String, family: Int = 0, model: Int = 0, stepping: Int = 0, flags: Set<String>) {
        self.vendor = vendor
        self.family = family
        self.model = model
        self.stepping = stepping
        self.flags = flags
    }

    /// This machine's, from cpuid and xgetbv (empty off x86-64).
    public static let current: CPUFeatures = {
        var f = csslm_cpu_features()
        csslm_cpu_detect(&f)
        return CPUFeatures(f)
    }()

    init(_ f: csslm_cpu_features) {
        let vendor = cString(f.vendor)
        let bits: [(String, Bool)] = [
            ("sse2", f.sse2), ("sse3", f.sse3), ("ssse3", f.ssse3), ("sse4_1", f.sse4_1), ("sse4_2", f.sse4_2),
            ("avx", f.avx), ("fma", f.fma), ("avx2", f.avx2), ("avx512f", f.avx512f), ("avx512dq", f.avx512dq),
            ("avx512cd", f.avx512cd), ("avx512bw", f.avx512bw), ("avx512vl", f.avx512vl), ("avx512_vnni", f.avx512_vnni),
            ("avx512_bf16", f.avx512_bf16), ("amx_tile", f.amx_tile), ("amx_bf16", f.amx_bf16)]
        self.init(vendor: vendor, family: Int(f.family), model: Int(f.model), stepping: Int(f.stepping),
                  flags: Set(bits.filter { $0.1 }.map { $0.0 }))
    }

    var c: csslm_cpu_features {
        var f = csslm_cpu_features()
        withUnsafeMutableBytes(of: &f.vendor) { buffer in
            for (i, byte) in vendor.utf8.prefix(buffer.count - 1).enumerated() { buffer[i] = byte }
        }
        f.family = UInt32(family); f.model = UInt32(model); f.stepping = UInt32(stepping)
        f.sse2 = flags.contains("sse2"); f.sse3 = flags.contains("sse3"); f.ssse3 = flags.contains("ssse3")
        f.sse4_1 = flags.contains("sse4_1"); f.sse4_2 = flags.contains("sse4_2")
        f.avx = flags.contains("avx"); f.fma = flags.contains("fma"); f.avx2 = flags.contains("avx2")
        f.avx512f = flags.contains("avx512f"); f.avx512dq = flags.contains("avx512dq"); f.avx512cd = flags.contains("avx512cd")
        f.avx512bw = flags.contains("avx512bw"); f.avx512vl = flags.contains("avx512vl")
        f.avx512_vnni = flags.contains("avx512_vnni"); f.avx512_bf16 = flags.contains("avx512_bf16")
        f.amx_tile = flags.contains("amx_tile"); f.amx_bf16 = flags.contains("amx_bf16")
        return f
    }

    /// The flags in the order of `knownFlags`.
    public var flagList: [String] { Self.knownFlags.filter(flags.contains) }

    /// The widest instruction-set level the CPU offers: "AVX-512", "AVX2+FMA", "AVX", "SSE2" or "none".
    public var level: ISALevel { ISALevel(rawValue: Int(withUnsafePointer(to: c) { csslm_cpu_level($0) })) ?? .none }

    public var isAMD: Bool { vendor == "AuthenticAMD" || vendor == "HygonGenuine" }
}

/// Instruction-set levels of OpenBLAS's x86-64 kernels (and of CPUs).
public enum ISALevel: Int, Comparable, Sendable, CustomStringConvertible {
    case none = -1, sse = 0, avx = 1, avx2 = 2, avx512 = 3
    public static func < (a: ISALevel, b: ISALevel) -> Bool { a.rawValue < b.rawValue }
    public var description: String {
        switch self {
        case .none: return "none"
        case .sse: return "SSE2"
        case .avx: return "AVX"
        case .avx2: return "AVX2+FMA"
        case .avx512: return "AVX-512"
        }
    }
}

/// The text of a C `char[N]` field (imported as a tuple).
func cString<T>(_ tuple: T) -> String {
    withUnsafeBytes(of: tuple) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
}

/// The OpenBLAS core (kernel set) of this process and how it was chosen.
public enum BLASCore {
    /// Where an OPENBLAS_CORETYPE came from, for `decision`.
    public enum Origin: Int32, Sendable { case openblas = 0, user = 1, csslm = 2 }

    /// What happened before main (Sources/CCPU/blas_startup.c).
    public enum Action: Int32, Sendable {
        case notChecked = 0, kept, user, inherited, reexecuted, ignored, execFailed
    }

    /// openblas_get_corename(): the kernels OpenBLAS runs.
    public static var name: String { String(cString: openblas_get_corename()) }

    /// openblas_get_config(): version and build options (DYNAMIC_ARCH, threading).
    public static var config: String { String(cString: openblas_get_config()).trimmingCharacters(in: .whitespaces) }

    /// The level of an OpenBLAS core name; `.none` for a name csslm does not know.
    public static func level(of core: String) -> ISALevel {
        ISALevel(rawValue: Int(csslm_openblas_core_level(core))) ?? .none
    }

    /// The core for `cpu`: Cooperlake/SkylakeX (AVX-512 with/without BF16), Zen/Haswell (AVX2+FMA,
    /// AMD/other), Sandybridge (AVX); nil below AVX.
    public static func best(for cpu: CPUFeatures) -> String? {
        withUnsafePointer(to: cpu.c) { csslm_openblas_core_for($0) }.map { String(cString: $0) }
    }

    /// The OPENBLAS_CORETYPE csslm sets for a process whose OpenBLAS chose `chosen` on `cpu`, or
    /// nil to keep it (the function the start-up check calls).
    public static func decision(chosen: String, cpu: CPUFeatures, origin: Origin) -> String? {
        withUnsafePointer(to: cpu.c) { csslm_openblas_core_decision(chosen, $0, origin.rawValue) }.map { String(cString: $0) }
    }

    public static var startup: (action: Action, first: String, target: String) {
        let s = csslm_blas_startup().pointee
        return (Action(rawValue: s.action) ?? .notChecked, cString(s.first), cString(s.target))
    }

    /// How the core was chosen, in words.
    public static var how: String {
        let s = startup
        switch s.action {
        case .notChecked: return "not checked (not x86-64 Linux)"
        case .kept: return "OpenBLAS's own choice, the best for this CPU"
        case .user: return "set by the user (OPENBLAS_CORETYPE=\(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? ""))"
        case .inherited: return "set by csslm (OPENBLAS_CORETYPE inherited from a csslm process)"
        case .reexecuted: return "OpenBLAS chose \(s.first), below this CPU: csslm set OPENBLAS_CORETYPE=\(s.target) and re-executed"
        case .ignored: return "OpenBLAS chose \(s.first); csslm set OPENBLAS_CORETYPE=\(s.target) and re-executed, but this OpenBLAS ignores it (not a DYNAMIC_ARCH build?)"
        case .execFailed: return "OpenBLAS chose \(s.first), below this CPU; re-executing with OPENBLAS_CORETYPE=\(s.target) failed (\(String(cString: strerror(csslm_blas_startup().pointee.exec_errno))))"
        }
    }

    /// One line: the core, how it was chosen, the CPU.
    public static var summary: String {
        let cpu = CPUFeatures.current
        return "BLAS: \(config.split(separator: " ").prefix(2).joined(separator: " ")) core \(name) (\(how)); "
            + "CPU: \(Machine.modelName), \(cpu.level) (\(cpu.flagList.joined(separator: " ")))"
    }

    private static let logged: Void = {
        let log = Logger(label: "csslm.blas")
        switch startup.action {
        case .ignored, .execFailed: log.warning("\(summary)")
        case .user where level(of: name) < CPUFeatures.current.level:
            log.warning("\(summary): the user's core is below what the CPU offers (\(best(for: .current) ?? "?"))")
        default: log.info("\(summary)")
        }
    }()

    /// Logs `summary` once per process (info; warning when the core stays below the CPU).
    public static func logOnce() { _ = logged }
}

/// The machine: CPU model, cores, clock and the fp32 peak derived from them.
public enum Machine {
    static let cpuinfo: String = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""

    /// Values of `key` in /proc/cpuinfo, one per logical CPU.
    static func cpuinfoValues(_ key: String) -> [String] {
        cpuinfo.split(separator: "\n").compactMap { line in
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == key else { return nil }
            return parts[1].trimmingCharacters(in: .whitespaces)
        }
    }

    /// "model name" of /proc/cpuinfo ("unknown" elsewhere).
    public static var modelName: String { cpuinfoValues("model name").first ?? "unknown" }

    /// The flags line of /proc/cpuinfo (the kernel's view; empty elsewhere).
    public static var kernelFlags: Set<String> { Set((cpuinfoValues("flags").first ?? "").split(separator: " ").map(String.init)) }

    /// Logical CPUs this process may run on.
    public static var logicalCPUs: Int { ProcessInfo.processInfo.activeProcessorCount }

    /// Physical cores: distinct (physical id, core id) pairs of /proc/cpuinfo, at most the logical CPUs.
    public static var cores: Int {
        let ids = zip(cpuinfoValues("physical id"), cpuinfoValues("core id")).map { "\($0):\($1)" }
        return ids.isEmpty ? logicalCPUs : min(Set(ids).count, logicalCPUs)
    }

    /// The clock the peak assumes, GHz, and where it came from: cpufreq's maximum when the kernel
    /// exposes it (bare metal: the boost clock, above the all-core AVX clock), else the largest
    /// "cpu MHz" of /proc/cpuinfo (in a VM the nominal clock; the host may boost above it).
    public static var clock: (ghz: Double, source: String) {
        if let text = try? String(contentsOfFile: "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", encoding: .utf8),
           let khz = Double(text.trimmingCharacters(in: .whitespacesAndNewlines)), khz > 0 {
            return (khz / 1e6, "cpufreq cpuinfo_max_freq")
        }
        let mhz = cpuinfoValues("cpu MHz").compactMap(Double.init).max() ?? 0
        return (mhz / 1e3, "/proc/cpuinfo cpu MHz")
    }

    /// fp32 FLOPs per cycle of one core: FMA units × fp32 lanes per unit × 2, and why.
    public static func flopsPerCycle(_ cpu: CPUFeatures) -> (units: Int, lanes: Int, flops: Int, note: String) {
        switch cpu.level {
        case .avx512 where cpu.isAMD && cpu.family == 0x19:
            return (2, 8, 32, "Zen 4: AVX-512 runs double-pumped on two 256-bit FMA pipes")
        case .avx512 where cpu.isAMD:
            return (2, 16, 64, "AMD Zen 5: two 512-bit FMA pipes")
        case .avx512:
            return (2, 16, 64, "Intel AVX-512 server core: two 512-bit FMA units assumed (some Xeon Silver/Bronze and Gold 5xxx have one: half this)")
        case .avx2 where cpu.isAMD && cpu.family == 0x17 && cpu.model < 0x30:
            return (2, 4, 16, "Zen 1: two 128-bit FMA pipes")
        case .avx2:
            return (2, 8, 32, "two 256-bit FMA units")
        case .avx:
            return (1, 8, 16, "AVX without FMA: one 256-bit multiply and one add per cycle")
        case .sse, .none:
            return (1, 4, 8, "SSE: one 128-bit multiply and one add per cycle")
        }
    }

    /// fp32 peak GFLOP/s of `cores` cores: cores × FMA units × lanes × 2 × clock.
    public static func peakGFLOPS(cores n: Int? = nil) -> Double {
        Double(n ?? cores) * Double(flopsPerCycle(.current).flops) * clock.ghz
    }

    /// How `peakGFLOPS` is derived, with its numbers.
    public static func peakDerivation(cores n: Int? = nil) -> String {
        let f = flopsPerCycle(.current), c = clock
        return String(format: "%.0f GFLOP/s = %d cores × %d FMA units × %d fp32 lanes × 2 × %.3f GHz (clock: %@; %@)",
                      peakGFLOPS(cores: n), n ?? cores, f.units, f.lanes, c.ghz, c.source, f.note)
    }

    /// The MPI library (MPI_Get_library_version, callable before MPI_Init), first line.
    public static var mpiLibrary: String {
        var buffer = [CChar](repeating: 0, count: Int(MPI_MAX_LIBRARY_VERSION_STRING) + 1)
        var length: Int32 = 0
        guard MPI_Get_library_version(&buffer, &length) == 0 else { return "unknown" }
        return String(cString: buffer).split(separator: "\n").first.map { String($0).trimmingCharacters(in: .whitespaces) } ?? ""
    }
}
