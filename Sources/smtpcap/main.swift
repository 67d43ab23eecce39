import ArgumentParser
import PcapSource
import SMTPCapEngine
#if canImport(Glibc)
import Glibc
#endif

/// Exit status: 0 no finding, 1 findings, 2 error (like diff and grep).
func fail(_ message: String) -> Never {
    let line = "smtpcap: \(message)\n"
    _ = line.withCString { Glibc.write(2, $0, strlen($0)) }
    exit(2)
}

/// Parses a command's arguments; help prints and exits 0, an error is one line and status 2.
/// Subcommands are parsed on their own (the analyzer's filter expression, a list of words,
/// would swallow their names), so their help is asked of the root to carry its name.
func parseOrExit<C: ParsableCommand>(_ type: C.Type, _ arguments: [String]) -> C {
    do {
        return try C.parse(arguments)
    } catch {
        if C.exitCode(for: error) == .success {
            let isHelp = arguments.contains { $0 == "--help" || $0 == "-h" }
            print(isHelp ? SMTPCapCommand.helpMessage(for: C.self) : C.fullMessage(for: error))
            exit(0)
        }
        fail(C.message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid arguments")
    }
}

/// Writes all of `text` to standard output; a failed write (a closed pipe) is status 2.
func writeOut(_ text: String) {
    if !writeStandardOutput(text) { exit(2) }
}

/// -w must not follow a symlink someone else planted.
func refuseForeignSymlink(_ path: String?) {
    guard let path else { return }
    var st = stat()
    if lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFLNK, st.st_uid != geteuid() {
        fail("refusing to write \(path): it is a symbolic link owned by another user")
    }
}

let subcommand = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : ""
let subcommandArguments = Array(CommandLine.arguments.dropFirst(2))

// `smtpcap compare A B`: a command of its own; everything else is the analyzer's.
if subcommand == "compare" {
    let compare = parseOrExit(CompareCommand.self, subcommandArguments)
    do {
        let outcome = try CompareRun.run(compare.a, compare.b, options: try compare.options(), json: compare.json,
                                         color: compare.useColor)
        writeOut(outcome.report)
        exit(outcome.identical ? 0 : 1)
    } catch let error as PcapError {
        fail(error.message)
    } catch {
        fail(CompareCommand.message(for: error))
    }
}

// `smtpcap probe TARGET...`: the active test.
if subcommand == "probe" {
    let probe = parseOrExit(ProbeCommand.self, subcommandArguments)
    refuseForeignSymlink(probe.write)
    // A server that resets a TLS connection must not end the run through SIGPIPE.
    signal(SIGPIPE, SIG_IGN)
    let outcome = ProbeRun.run(probe.settings, options: EngineOptions())
    if let error = outcome.error { fail(error) }
    writeOut(outcome.report)
    exit(outcome.status)
}

// `smtpcap help [probe|compare]`.
if subcommand == "help" {
    switch subcommandArguments.first {
    case "probe": print(SMTPCapCommand.helpMessage(for: ProbeCommand.self))
    case "compare": print(SMTPCapCommand.helpMessage(for: CompareCommand.self))
    default: print(SMTPCapCommand.helpMessage())
    }
    exit(0)
}

let command: SMTPCapCommand
do {
    command = try SMTPCapCommand.parse()
} catch {
    let code = SMTPCapCommand.exitCode(for: error)
    if code == .success {
        print(SMTPCapCommand.fullMessage(for: error))
        exit(0)
    }
    let message = SMTPCapCommand.message(for: error)
    fail(message.split(separator: "\n").first.map(String.init) ?? "invalid arguments")
}
if command.nothingToRead { fail("nothing to read: give -r FILE or -i INTERFACE (see --help)") }

if command.listInterfaces {
    do {
        for device in try PcapSource.listDevices() {
            print("\(device.name)\(device.description.map { " (\($0))" } ?? "")")
        }
        exit(0)
    } catch {
        fail(error.message)
    }
}

let options: EngineOptions
do {
    options = try command.options()
} catch {
    fail(SMTPCapCommand.message(for: error))
}

refuseForeignSymlink(options.writeFile)

// A parent may have started us with these blocked (threaded launchers do): unblock them, or
// SIGINT/SIGTERM would never end a live capture.
var stopSignals = sigset_t()
sigemptyset(&stopSignals)
sigaddset(&stopSignals, SIGINT)
sigaddset(&stopSignals, SIGTERM)
sigprocmask(SIG_UNBLOCK, &stopSignals, nil)
signal(SIGINT) { _ in requestStop() }
signal(SIGTERM) { _ in requestStop() }

let result: RunResult
do {
    result = try Engine(options: options).run()
} catch {
    fail(error.message)
}
exit(result.outputFailed ? 2 : result.findings > 0 ? 1 : 0)
