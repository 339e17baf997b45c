// swift-tools-version:5.9
import Foundation
import PackageDescription

/// libgatednet.so exports exactly the gn_* functions of include/gatednet.h (the version
/// script) and records its SONAME.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path
let libraryLinkFlags = ["-Xlinker", "--version-script=\(packageRoot)/Sources/GatedNetC/exports.map",
                        "-Xlinker", "-soname=libgatednet.so"]

// gatednet: the engine (`GatedNet`, a plain Swift module), the C export layer
// (`GatedNetC`, only @_cdecl translation) shipped as libgatednet.so, and the demo job.
let package = Package(
    name: "gatednet",
    products: [
        .library(name: "gatednet", type: .dynamic, targets: ["GatedNetC"]),
        .executable(name: "gatednet-demo", targets: ["gatednet-demo"]),
    ],
    targets: [
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS"),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .systemLibrary(name: "CGatedNetABI", path: "Sources/CGatedNetABI"),
        // -fno-math-errno lets sqrtf vectorise (errno is never read).
        // Hidden visibility: the gnk_* kernels are internal to the library.
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3", "-fno-math-errno", "-fvisibility=hidden"])]),
        .target(
            name: "GatedNet",
            dependencies: ["CBLAS", "CZlib", "CKernels"],
            exclude: ["Conv/README.md"],
            swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
        ),
        .target(name: "GatedNetC", dependencies: ["GatedNet", "CGatedNetABI"], exclude: ["exports.map"],
                linkerSettings: [.unsafeFlags(libraryLinkFlags)]),
        .executableTarget(name: "gatednet-demo", dependencies: ["GatedNet"]),
        .testTarget(name: "GatedNetTests", dependencies: ["GatedNet"]),
    ]
)
