// `csslm doctor`: what this process runs on (CPU, BLAS core and how it was chosen, threads, MPI).
import ArgumentParser
import CSSLM
import Foundation

struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Print the CPU, the BLAS core and how it was chosen, threads and MPI.",
        discussion: """
            At start-up every csslm process compares the kernels OpenBLAS chose (its core) with \
            what the CPU offers (cpuid) and, when OpenBLAS chose below the CPU (a CPU newer than its \
            tables), re-executes itself with OPENBLAS_CORETYPE set to the right core. A user's own \
            OPENBLAS_CORETYPE is kept. Under mpirun every rank does this for its own node.
            """)

    @Flag(help: "One JSON object instead of text.") var json = false

    func run() throws {
        let cpu = CPUFeatures.current, env = ProcessInfo.processInfo.environment
        let startup = BLASCore.startup
        let fields: [String: Any] = [
            "version": CSSLMVersion.string,
            "cpu_model": Machine.modelName, "cpu_vendor": cpu.vendor, "cpu_family": cpu.family, "cpu_model_number": cpu.model,
            "cpu_stepping": cpu.stepping, "cpu_flags": cpu.flagList, "cpu_level": cpu.level.description,
            "logical_cpus": Machine.logicalCPUs, "cores": Machine.cores,
            "fp32_peak_gflops": Machine.peakGFLOPS(), "fp32_peak": Machine.peakDerivation(),
            "blas_config": BLASCore.config, "blas_core": BLASCore.name, "blas_core_level": BLASCore.level(of: BLASCore.name).description,
            "blas_best_core": BLASCore.best(for: cpu) ?? "", "blas_action": "\(startup.action)", "blas_first_core": startup.first,
            "blas_how": BLASCore.how, "openblas_coretype": env["OPENBLAS_CORETYPE"] ?? "",
            "compute_threads": ComputeThreads.count, "pid": Int(getpid()),
            "mpi_library": Machine.mpiLibrary, "mpirun": MPIRuntime.isLaunchedByMPIRun,
            "rank": env["OMPI_COMM_WORLD_RANK"] ?? env["PMIX_RANK"] ?? "0",
        ]
        if json {
            let data = try JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        let rank = MPIRuntime.isLaunchedByMPIRun ? "[rank \(fields["rank"]!)] " : ""
        let lines = [
            "csslm \(CSSLMVersion.string)",
            "CPU:      \(Machine.modelName) (\(cpu.vendor) family \(cpu.family) model \(cpu.model) stepping \(cpu.stepping)), "
                + "\(Machine.logicalCPUs) logical CPUs, \(Machine.cores) cores",
            "ISA:      \(cpu.level): \(cpu.flagList.joined(separator: " "))",
            "fp32 peak: \(Machine.peakDerivation())",
            "BLAS:     \(BLASCore.config)",
            "core:     \(BLASCore.name) (\(BLASCore.level(of: BLASCore.name))); \(BLASCore.how); best for this CPU: \(BLASCore.best(for: cpu) ?? "OpenBLAS's choice")",
            "threads:  \(ComputeThreads.count) compute threads (CSSLM_THREADS, else OPENBLAS_NUM_THREADS, else the core count), "
                + "each sgemm single-threaded when above 1",
            "MPI:      \(Machine.mpiLibrary); \(MPIRuntime.isLaunchedByMPIRun ? "launched by mpirun, rank \(fields["rank"]!)" : "not under mpirun")",
        ]
        for line in lines { print(rank + line) }
    }
}
