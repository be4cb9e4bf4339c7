// The shipped run configs (configs/*.json) stay loadable: each parses as a TrainConfig and passes
// validation, with its relative paths taken from the repository root as the README runs them.
import Foundation
import XCTest
@testable import CSSLM

final class ConfigFilesTests: XCTestCase {
    func testEveryShippedConfigParsesAndValidates() throws {
        let folder = TestPaths.root.appendingPathComponent("configs")
        let files = try FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "json" }.sorted { $0.lastPathComponent < $1.lastPathComponent }
        let names = files.map(\.lastPathComponent)
        for expected in ["demo-rotten-tomatoes.json", "rotten-tomatoes.json", "twitter-sentiment.json", "bbc-news.json"] {
            XCTAssertTrue(names.contains(expected), "configs/\(expected) missing; found \(names)")
        }
        _ = try TestPaths.miniLM()  // validation needs the installed model and data
        for file in files {
            var config = try TrainConfig.load(from: file)
            func rooted(_ path: String) -> String { path.hasPrefix("/") ? path : TestPaths.root.appendingPathComponent(path).path }
            config.model = rooted(config.model)
            config.corpus = rooted(config.corpusPath)
            config.data = rooted(config.data)
            XCTAssertNoThrow(try config.validate(), "configs/\(file.lastPathComponent)")
        }
    }
}
