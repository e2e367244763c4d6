import Testing
import VMMKit

@Suite("Plugin search path order")
struct PluginSearchOrderTests {
    @Test("the package's build folders list this build's own configuration first")
    func ownConfigurationFirst() throws {
        let folders = PluginSearchPath.buildFolders
        try #require(folders.count == 3, "the package root was not found from #filePath")
        #expect(folders[0].hasSuffix("/.build/plugins"))
        #if DEBUG
        #expect(folders[1].hasSuffix("/.build/debug") && folders[2].hasSuffix("/.build/release"))
        #else
        #expect(folders[1].hasSuffix("/.build/release") && folders[2].hasSuffix("/.build/debug"))
        #endif
    }
}
