import Foundation

/// Where the tests find the project's captures and the shared peer captures (beside the
/// repository, absent on some machines: tests that need them skip).
public enum TestPaths {
    public static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    public static let captures = repoRoot.appendingPathComponent("captures")
    public static let peerCaptures = repoRoot.deletingLastPathComponent().appendingPathComponent("shared/peer-captures")
}
