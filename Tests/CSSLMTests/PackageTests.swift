import XCTest
import CSSLM

final class PackageTests: XCTestCase {
    func testVersionIsSemantic() {
        XCTAssertEqual(CSSLMVersion.string.split(separator: ".").count, 3)
    }
}
