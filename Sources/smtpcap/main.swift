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

// `smtpcap compare A B`: a command of its own; everything else is the analyzer's.
if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "compare" {
    let arguments = Array(CommandLine.arguments.dropFirst(2))
    let compare: CompareCommand
    do {
        compare = try CompareCommand.parse(arguments)
    } catch {
        if CompareCommand.exitCode(for: error) == .success {
            print(CompareCommand.fullMessage(for: error))
            exit(0)
        }
        let message = CompareCommand.message(for: error)
        fail(message.split(separator: "\n").first.map(String.init) ?? "invalid arguments")
    }
    do {
        let outcome = try CompareRun.run(compare.a, compare.b, options: try compare.options(), json: compare.json,
                                         color: compare.useColor)
        let text = outcome.report
        _ = text.withCString { Glibc.write(1, $0, strlen($0)) }
        exit(outcome.identical ? 0 : 1)
    } catch let error as PcapError {
        fail(error.message)
    } catch {
        fail(CompareCommand.message(for: error))
    }
}

// `smtpcap probe TARGET...`: the active test.
if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "probe" {
    let arguments = Array(CommandLine.arguments.dropFirst(2))
    let probe: ProbeCommand
    do {
        probe = try ProbeCommand.parse(arguments)
    } catch {
        if ProbeCommand.exitCode(for: error) == .success {
            print(ProbeCommand.fullMessage(for: error))
            exit(0)
        }
        let message = ProbeCommand.message(for: error)
        fail(message.split(separator: "\n").first.map(String.init) ?? "invalid arguments")
    }
    if let path = probe.write {
        var st = stat()
        if lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFLNK, st.st_uid != geteuid() {
            fail("refusing to write \(path): it is a symbolic link owned by another user")
        }
    }
    let outcome = ProbeRun.run(probe.settings, options: EngineOptions())
    let text = outcome.report
    _ = text.withCString { Glibc.write(1, $0, strlen($0)) }
    exit(outcome.status)
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

// -w must not follow a symlink someone else planted.
if let path = options.writeFile {
    var st = stat()
    if lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFLNK, st.st_uid != geteuid() {
        fail("refusing to write \(path): it is a symbolic link owned by another user")
    }
}

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
exit(result.findings > 0 ? 1 : 0)
