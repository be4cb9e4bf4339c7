// The csslm command-line tool.
import ArgumentParser
import CSSLM

struct CSSLMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "csslm",
        abstract: "Contrastive semi-supervised fine-tuning (CSS-LM) of BERT-family encoders.",
        version: CSSLMVersion.string,
        subcommands: [TokenizeCommand.self])
}

// Top-level entry rather than @main: a main.swift beside other files of the module cannot use @main.
CSSLMCommand.main()
