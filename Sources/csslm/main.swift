// The csslm command-line tool.
import ArgumentParser
import CSSLM
import Foundation

struct CSSLMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "csslm",
        abstract: "Contrastive semi-supervised fine-tuning (CSS-LM) of BERT-family encoders.",
        version: CSSLMVersion.string + "\n" + BLASCore.summary,
        subcommands: [TrainCommand.self, ExperimentCommand.self, EvalCommand.self, PredictCommand.self, EmbedCommand.self, TokenizeCommand.self, ExportCommand.self, ReportCommand.self, DoctorCommand.self])
}

// Top-level entry rather than @main: a main.swift beside other files of the module cannot use @main.
setvbuf(stdout, nil, _IOLBF, 0)
CSSLMCommand.main()
if MPIRuntime.isLaunchedByMPIRun { MPIRuntime.finalize() }
