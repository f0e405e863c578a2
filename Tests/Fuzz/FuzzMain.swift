import Foundation
import Trainer

// Built two ways (see the Makefile's `fuzz` target):
//
// - with `-sanitize=fuzzer,address -D FUZZING`: a libFuzzer binary, the target named by
//   the environment variable RECSTREAM_FUZZ_TARGET (libFuzzer's own flags and corpus
//   directories as arguments).
// - in the ordinary build: `recstream-fuzz replay TARGET FILE...` runs a target over
//   saved inputs (the regression inputs under Tests/Fuzz/regressions, in `make test`),
//   and `recstream-fuzz seed DIR` writes each target's seed corpus.

#if FUZZING
/// libFuzzer's entry for a program that owns `main` (SwiftPM gives every executable a main
/// of its own, so libFuzzer's is not linked in).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// The target this process fuzzes, named by RECSTREAM_FUZZ_TARGET (read once, before the
/// first input, whichever `main` runs).
let fuzzTarget: FuzzTarget = {
    let name = ProcessInfo.processInfo.environment["RECSTREAM_FUZZ_TARGET"] ?? ""
    guard let target = FuzzTarget(rawValue: name) else {
        FileHandle.standardError.write(Data("set RECSTREAM_FUZZ_TARGET to one of \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")), got '\(name)'\n".utf8))
        exit(2)
    }
    _ = World.shared
    return target
}()

@main
struct FuzzDriver {
    static func main() {
        _ = fuzzTarget
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzOneInput))
    }
}

/// One input. Also exported under libFuzzer's own name, which its archive's `main`
/// object refers to when the linker pulls it in.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    fuzzTarget.run(count == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: count)))
    return 0
}
#else
@main
struct FuzzDriver {
    static func main() throws {
        let arguments = Array(CommandLine.arguments.dropFirst())
        let targets = FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")
        switch arguments.first {
        case "replay" where arguments.count >= 2:
            guard let target = FuzzTarget(rawValue: arguments[1]) else {
                fail("unknown target '\(arguments[1])'; targets: \(targets)")
            }
            var files: [String] = []
            for path in arguments.dropFirst(2) {
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { fail("\(path): no such file") }
                if isDirectory.boolValue {
                    files += try FileManager.default.contentsOfDirectory(atPath: path).sorted().map { "\(path)/\($0)" }
                } else {
                    files.append(path)
                }
            }
            for file in files {
                guard let data = FileManager.default.contents(atPath: file) else { fail("\(file): cannot be read") }
                target.run([UInt8](data))
            }
            print("\(target.rawValue): \(files.count) inputs replayed")
        case "seed" where arguments.count == 2:
            for target in FuzzTarget.allCases {
                let directory = "\(arguments[1])/\(target.rawValue)"
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                for (i, seed) in try target.seeds().enumerated() {
                    // A sealed seed must pass its checks once sealed: else the harness seals
                    // wrongly and the fuzzer would never get past the checksum.
                    switch target {
                    case .update:
                        guard World.shared.server.take(modelMessage: FuzzTarget.sealed(seed), from: "seed") else {
                            fail("the update seed does not apply: \(World.shared.server.lastUpdateError ?? "(no error)")")
                        }
                    case .trainerCheckpoint:
                        _ = try World.shared.trainer.decodeCheckpoint(FuzzTarget.sealed(seed), partitions: 3)
                    case .checkpoint:
                        _ = try Checkpoint.decode(FuzzTarget.sealed(seed))
                    case .openUpdate:
                        guard World.shared.openServer.take(modelMessage: FuzzTarget.sealed(seed), from: "seed") else {
                            fail("the open-world update seed does not apply: \(World.shared.openServer.lastUpdateError ?? "(no error)")")
                        }
                    case .openCheckpoint:
                        _ = try World.shared.openTrainer.decodeCheckpoint(FuzzTarget.sealed(seed), partitions: 3, itemPartitions: 2)
                    case .wire, .json, .mapping:
                        break
                    }
                    FileManager.default.createFile(atPath: "\(directory)/seed-\(i)", contents: Data(seed))
                }
            }
        default:
            fail("usage: recstream-fuzz replay TARGET FILE|DIR... | recstream-fuzz seed DIR; targets: \(targets)")
        }
    }

    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("recstream-fuzz: \(message)\n".utf8))
        exit(2)
    }
}
#endif
