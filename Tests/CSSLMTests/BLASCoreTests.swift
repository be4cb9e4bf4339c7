// The OpenBLAS core check (Sources/CCPU, BLASCore): the decision over a table of (core OpenBLAS
// chose, CPU flags, where OPENBLAS_CORETYPE came from), cpuid against the kernel's flags, this
// test process's own core, and the re-execution of `csslm` (alone and on every rank of mpirun)
// on a simulated CPU that OpenBLAS does not know.
import CSSLM
import Foundation
import XCTest

final class BLASCoreTests: XCTestCase {
    static let sse: Set<String> = ["sse2", "sse3", "ssse3", "sse4_1", "sse4_2"]
    static let avx = sse.union(["avx"])
    static let avx2 = avx.union(["fma", "avx2"])
    static let skylakeX = avx2.union(["avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl"])
    static let sapphireRapids = skylakeX.union(["avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16"])
    static let knightsLanding = avx2.union(["avx512f", "avx512cd"])  // no BW/DQ/VL: OpenBLAS's Haswell kernels

    static let intel = "GenuineIntel", amd = "AuthenticAMD"

    func testDecisionOverATableOfCoresAndCPUs() {
        typealias Case = (chosen: String, vendor: String, flags: Set<String>, origin: BLASCore.Origin, expected: String?, why: String)
        let cases: [Case] = [
            ("Prescott", Self.intel, Self.sapphireRapids, .openblas, "Cooperlake", "Xeon 6/207 (Emerald Rapids): OpenBLAS 0.3.21 falls back to Prescott"),
            ("Prescott", Self.intel, Self.skylakeX, .openblas, "SkylakeX", "AVX-512 without BF16"),
            ("Haswell", Self.intel, Self.sapphireRapids, .openblas, "Cooperlake", "AVX2 kernels on an AVX-512 CPU"),
            ("SkylakeX", Self.intel, Self.sapphireRapids, .openblas, nil, "already AVX-512 kernels"),
            ("Cooperlake", Self.amd, Self.sapphireRapids, .openblas, nil, "Zen 4: OpenBLAS's own choice fits"),
            ("Zen", Self.amd, Self.avx2, .openblas, nil, "Zen 3: unchanged"),
            ("Haswell", Self.amd, Self.avx2, .openblas, nil, "same level: OpenBLAS's choice is kept"),
            ("Prescott", Self.amd, Self.avx2, .openblas, "Zen", "AVX2 AMD CPU unknown to OpenBLAS"),
            ("Prescott", Self.intel, Self.avx2, .openblas, "Haswell", "AVX2 Intel CPU unknown to OpenBLAS"),
            ("Nehalem", Self.intel, Self.avx, .openblas, "Sandybridge", "AVX without AVX2"),
            ("Prescott", Self.intel, Self.sse, .openblas, nil, "nothing better than SSE kernels"),
            ("Prescott", Self.intel, [], .openblas, nil, "no x86 features (another architecture)"),
            ("Haswell", Self.intel, Self.knightsLanding, .openblas, nil, "AVX-512F without BW/DQ/VL is an AVX2 target"),
            ("Prescott", Self.intel, Self.sapphireRapids, .user, nil, "the user's OPENBLAS_CORETYPE is kept"),
            ("Cooperlake", Self.intel, Self.avx2, .user, nil, "even above the CPU: the user's choice"),
            ("Cooperlake", Self.amd, Self.avx2, .csslm, "Zen", "inherited from csslm on another CPU: the CPU cannot run it"),
            ("Cooperlake", Self.intel, Self.sapphireRapids, .csslm, nil, "inherited and right"),
            ("Prescott", Self.intel, Self.sapphireRapids, .csslm, "Cooperlake", "inherited and too low"),
            ("Cooperlake", Self.intel, Self.avx2, .openblas, nil, "OpenBLAS's own choice above cpuid: its business"),
            ("ARMV8", Self.intel, Self.sapphireRapids, .openblas, nil, "a core name csslm does not know"),
            ("NEOVERSEN1", "", [], .openblas, nil, "not x86"),
        ]
        for c in cases {
            let cpu = CPUFeatures(vendor: c.vendor, family: c.vendor == Self.amd ? 0x19 : 6, model: 0, flags: c.flags)
            let got = BLASCore.decision(chosen: c.chosen, cpu: cpu, origin: c.origin)
            print("\(got == c.expected ? "OK " : "BAD") \(c.chosen) on \(c.vendor) \(cpu.level) (\(c.origin)) → \(got ?? "keep"): \(c.why)")
            XCTAssertEqual(got, c.expected, c.why)
        }
        XCTAssertEqual(BLASCore.level(of: "Prescott"), .sse)
        XCTAssertEqual(BLASCore.level(of: "Zen"), .avx2)
        XCTAssertEqual(BLASCore.level(of: "SapphireRapids"), .avx512)
        XCTAssertEqual(BLASCore.level(of: "POWER9"), .none)
    }

    /// cpuid's flags against the kernel's /proc/cpuinfo (which also reflects what the OS enabled):
    /// every instruction set the detection reports, the CPU really has, and the other way round.
    func testDetectionPicksOnlyInstructionSetsTheCPUHas() throws {
        #if arch(x86_64) && os(Linux)
        let kernel = Machine.kernelFlags, cpu = CPUFeatures.current
        XCTAssertFalse(kernel.isEmpty, "/proc/cpuinfo has no flags line")
        for flag in CPUFeatures.knownFlags {
            let kernelName = flag == "sse3" ? "pni" : flag
            XCTAssertEqual(cpu.flags.contains(flag), kernel.contains(kernelName), "\(flag): cpuid and /proc/cpuinfo disagree")
        }
        print("cpuid: \(cpu.vendor) family \(cpu.family) model \(cpu.model), \(cpu.level): \(cpu.flagList.joined(separator: " "))")
        XCTAssertTrue(cpu.flags.contains("sse2"), "every x86-64 CPU has SSE2")
        if let best = BLASCore.best(for: cpu) {
            XCTAssertLessThanOrEqual(BLASCore.level(of: best), cpu.level, "\(best) needs more than the CPU has")
        }
        #else
        throw XCTSkip("cpuid is x86-64 only")
        #endif
    }

    /// This test process runs on the best core for the CPU (re-executed before main if OpenBLAS
    /// chose lower), unless the user set OPENBLAS_CORETYPE.
    func testThisProcessRunsTheCoreOfItsCPU() throws {
        #if arch(x86_64) && os(Linux)
        let cpu = CPUFeatures.current, core = BLASCore.name, startup = BLASCore.startup
        print("test process: \(BLASCore.summary)")
        XCTAssertNotEqual(startup.action, .notChecked)
        XCTAssertNotEqual(startup.action, .execFailed, BLASCore.how)
        if startup.action == .user { throw XCTSkip("OPENBLAS_CORETYPE set by the user: \(core)") }
        XCTAssertLessThanOrEqual(BLASCore.level(of: core), cpu.level, "\(core) needs instructions the CPU lacks")
        if let best = BLASCore.best(for: cpu) {
            XCTAssertEqual(BLASCore.level(of: core), BLASCore.level(of: best), "OpenBLAS runs \(core), the CPU offers \(best)")
        }
        #else
        throw XCTSkip("cpuid is x86-64 only")
        #endif
    }

    /// Runs `csslm doctor --json` (under mpirun with `ranks`) with `extra` in the environment; one
    /// JSON object per rank.
    func doctor(_ extra: [String: String], ranks: Int? = nil) throws -> [[String: Any]] {
        var env = ProcessInfo.processInfo.environment.filter { k, _ in
            !["OMPI_", "PMIX_", "OPAL_", "OPENBLAS_CORETYPE", "CSSLM_OPENBLAS_CORETYPE", "CSSLM_BLAS_"].contains { k.hasPrefix($0) }
        }
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"; env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"; env["OPENBLAS_NUM_THREADS"] = "1"
        env.merge(extra) { $1 }
        var command = ["-k", "5", "60"]
        if let ranks {
            guard DistributedTests.hasMPIRun else { throw XCTSkip("mpirun not found") }
            command += ["mpirun", "-np", String(ranks), "--oversubscribe", "--bind-to", "none"]
            for key in extra.keys.sorted() { command += ["-x", key] }
        }
        // Under mpirun each rank writes its own file: mpirun forwards the ranks' output in chunks,
        // and two long JSON lines arriving at once can interleave (seen once in a full run).
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("csslm-doctor-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let binary = try TrainerTests.csslmBinary().path
        command += ranks == nil ? [binary, "doctor", "--json"]
            : ["/bin/sh", "-c", "exec \"$0\" doctor --json > \"$1/rank-$OMPI_COMM_WORLD_RANK.json\"", binary, folder.path]
        let p = Process(), pipe = Pipe()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        p.arguments = command
        p.environment = env
        p.standardOutput = pipe
        try p.run()
        var data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        if ranks != nil {
            data = Data()
            for name in try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() {
                data += try Data(contentsOf: folder.appendingPathComponent(name)) + Data("\n".utf8)
            }
        }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    /// A CPU OpenBLAS does not know, simulated: OpenBLAS really runs Prescott (OPENBLAS_CORETYPE),
    /// and CSSLM_BLAS_SIMULATE_UNKNOWN_CPU makes csslm treat that as OpenBLAS's own choice. csslm
    /// re-executes itself (same pid) with the CPU's core, alone and on every rank under mpirun.
    func testCSSLMReexecutesWithTheCPUsCoreWhenOpenBLASChoseLower() throws {
        let cpu = CPUFeatures.current
        guard let best = BLASCore.best(for: cpu), cpu.level > .sse else { throw XCTSkip("no core above SSE for this CPU") }
        let simulated = ["OPENBLAS_CORETYPE": "Prescott", "CSSLM_BLAS_SIMULATE_UNKNOWN_CPU": "1"]
        for ranks in [nil, 2] as [Int?] {
            let reports = try doctor(simulated, ranks: ranks)
            XCTAssertEqual(reports.count, ranks ?? 1)
            for r in reports {
                print("ranks \(ranks ?? 1), rank \(r["rank"] ?? "?"): core \(r["blas_core"] ?? "?"): \(r["blas_how"] ?? "?")")
                XCTAssertEqual(r["blas_core"] as? String, best)
                XCTAssertEqual(r["blas_action"] as? String, "reexecuted")
                XCTAssertEqual(r["blas_first_core"] as? String, "Prescott")
                XCTAssertEqual(r["openblas_coretype"] as? String, best)
            }
        }
    }

    /// The user's OPENBLAS_CORETYPE is kept, even a slow one; without it csslm runs the CPU's core.
    func testUsersCoreTypeIsRespected() throws {
        let user = try XCTUnwrap(try doctor(["OPENBLAS_CORETYPE": "Prescott"]).first)
        XCTAssertEqual(user["blas_core"] as? String, "Prescott")
        XCTAssertEqual(user["blas_action"] as? String, "user")
        let plain = try XCTUnwrap(try doctor([:]).first)
        XCTAssertNotEqual(plain["blas_action"] as? String, "user")
        if let best = BLASCore.best(for: .current) {
            XCTAssertEqual(BLASCore.level(of: plain["blas_core"] as? String ?? ""), BLASCore.level(of: best))
        }
    }

    func testPeakIsCoresTimesFMAUnitsTimesLanesTimesTwoTimesClock() {
        let f = Machine.flopsPerCycle(.current), clock = Machine.clock
        XCTAssertEqual(f.flops, f.units * f.lanes * 2)
        XCTAssertEqual(Machine.peakGFLOPS(cores: 3), 3 * Double(f.flops) * clock.ghz, accuracy: 1e-9)
        let zen4 = CPUFeatures(vendor: Self.amd, family: 0x19, model: 0x11, flags: Self.sapphireRapids)
        XCTAssertEqual(Machine.flopsPerCycle(zen4).flops, 32, "Zen 4: two 256-bit pipes")
        let xeon = CPUFeatures(vendor: Self.intel, family: 6, model: 207, flags: Self.sapphireRapids)
        XCTAssertEqual(Machine.flopsPerCycle(xeon).flops, 64, "Xeon: two 512-bit FMA units")
        let zen3 = CPUFeatures(vendor: Self.amd, family: 0x19, model: 0x01, flags: Self.avx2)
        XCTAssertEqual(Machine.flopsPerCycle(zen3).flops, 32)
        print("fp32 peak: \(Machine.peakDerivation())")
    }
}
