// The csslm command-line tool.
import ArgumentParser
import CSSLM

@main
struct CSSLMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "csslm",
        abstract: "Contrastive semi-supervised fine-tuning (CSS-LM) of BERT-family encoders.",
        version: CSSLMVersion.string,
        subcommands: [])
}
