function __smtpcap_should_offer_completions_for_flags_or_options -a expected_commands
    set -l non_repeating_flags_or_options $argv[2..]
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __smtpcap_parse_tokens
    test "$commands" = "$expected_commands"; and return $non_repeating_flags_or_options_absent
end

function __smtpcap_should_offer_completions_for_positional -a expected_commands positional_index_comparison expected_positional_index
    set -l non_repeating_flags_or_options
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __smtpcap_parse_tokens
    test "$commands" = "$expected_commands" -a \( "$positional_index" "$positional_index_comparison" "$expected_positional_index" \)
end

function __smtpcap_parse_tokens -S
    set -l unparsed_tokens (__smtpcap_tokens -pc)
    switch $unparsed_tokens[1]
    case 'smtpcap'
        __smtpcap_parse_subcommand -r 1 'r/read=+' 'i/interface=' 'D/list-interfaces' 's/snaplen=' 'p/no-promiscuous-mode' 'ports=' 'implicit-tls-ports=' 'c=' 'sessions=' 'duration=' 'w=' 'json' 'format=' 'no-addresses' 'tls-report=' 'organization=' 'contact=' 'evidence=' 'v/verbose' 'q/quiet' 'color=' 'idle-timeout=' 'max-memory=' 'max-connections=' 'max-held-bytes=' 'j/jobs=' 'no-mmap' 'Z/relinquish-privileges=' 'version' 'h/help'
        switch $unparsed_tokens[1]
        case 'probe'
            __smtpcap_parse_subcommand -r 1 'port=' '4' '6' 'ehlo=' 'timeout=' 'json' 'w=' 'i/interface=' 'color=' 'version' 'h/help'
        case 'compare'
            __smtpcap_parse_subcommand 2 'json' 'ports=' 'implicit-tls-ports=' 'color=' 'max-memory=' 'version' 'h/help'
        case 'help'
            __smtpcap_parse_subcommand -r 1 'version'
        end
    end
end

function __smtpcap_tokens
    if test (string split -m 1 -f 1 -- . "$FISH_VERSION") -gt 3
        commandline --tokens-raw $argv
    else
        commandline -o $argv
    end
end

function __smtpcap_parse_subcommand -S -a positional_count
    argparse -s r -- $argv
    set -l option_specs $argv[2..]
    set -l is_repeating_positional $_flag_r
    set -el _flag_r
    set -a commands $unparsed_tokens[1]
    set positional_index 0
    while true
        set -e unparsed_tokens[1]
        argparse -sn "$commands" $option_specs -- $unparsed_tokens 2> /dev/null
        set unparsed_tokens $argv
        set positional_index (math $positional_index + 1)
        for non_repeating_flag_or_option in $non_repeating_flags_or_options
            if set -ql "_flag_$(string replace -a - _ -- $non_repeating_flag_or_option)"
                set non_repeating_flags_or_options_absent 1
                break
            end
        end
        test (count $unparsed_tokens) -eq 0 -o \( -z "$is_repeating_positional" -a "$positional_index" -gt "$positional_count" \) && break
    end
end

function __smtpcap_complete_directories
    set -l token (commandline -t)
    string match -- '*/' $token
    set -l subdirs $token*/
    printf %s\n $subdirs
end

function __smtpcap_custom_completion
    set -x SAP_SHELL fish
    set -x SAP_SHELL_VERSION $FISH_VERSION
    set -l tokens (__smtpcap_tokens -p)
    if test -z "$(__smtpcap_tokens -t)"
        set -l index (count (__smtpcap_tokens -pc))
        set tokens $tokens[..$index] \'\' $tokens[(math $index + 1)..]
    end
    command $tokens[1] $argv $tokens
end

complete -c 'smtpcap' -f
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap"' -l 'read' -s 'r' -d 'Read packets from a pcap or pcapng file, plain or gzip-compressed (\'-\' for standard input). Repeatable.' -rfka ''
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap" i interface' -l 'interface' -s 'i' -d 'Capture live on this interface (\'any\' for all).' -rfka ''
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap" D list-interfaces' -s 'D' -l 'list-interfaces' -d 'List the interfaces that can be captured on.'
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap" s snaplen' -s 's' -l 'snaplen' -d 'Bytes to capture per packet.' -rfka ''
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap" no-promiscuous-mode p' -s 'p' -l 'no-promiscuous-mode' -d 'Do not put the interface into promiscuous mode.'
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap" ports' -l 'ports' -d 'SMTP server ports (comma-separated).' -rfka ''
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap" implicit-tls-ports' -l 'implicit-tls-ports' -d 'Ports whose sessions are TLS from the first byte.' -rfka ''
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap" c' -s 'c' -d 'Stop after this many packets.' -rfka ''
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap" sessions' -l 'sessions' -d 'Stop after this many finished SMTP sessions.' -rfka ''
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap" duration' -l 'duration' -d 'Stop after this many seconds (live: wall clock; files: capture time).' -rfka ''
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap" w' -s 'w' -d 'Also write every captured packet to this pcap file.' -rfka ''
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap" json' -l 'json' -d 'Print JSON lines: one object per session, then a summary object (the same as --format json).'
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap" format' -l 'format' -d 'Output format: text, json (JSON lines), or eve (Suricata EVE JSON lines: smtp, tls and alert events, then stats).' -rfka ''
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap" no-addresses' -l 'no-addresses' -d 'Leave envelope addresses (MAIL FROM, RCPT TO) out of every output and the transcript.'
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap" tls-report' -l 'tls-report' -d 'Also write an RFC 8460 SMTP TLS report (JSON) over the capture to this file: a policy per recipient domain with its session counts and failure details.' -rfka ''
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap" organization' -l 'organization' -d 'The TLS report\'s organization-name.' -rfka ''
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap" contact' -l 'contact' -d 'The TLS report\'s contact-info (an address or URL).' -rfka ''
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap" evidence' -l 'evidence' -d 'Write a pcap of each session with findings (both directions, TLS included) and its text report into this directory, named by session id, verdict and uid. Existing files are never overwritten.' -rfka ''
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap" v verbose' -l 'verbose' -s 'v' -d 'Add an SMTP transcript per session (credentials and message content replaced by byte counts).'
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap" q quiet' -l 'quiet' -s 'q' -d 'Print only sessions with findings, and the summary.'
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap" color' -l 'color' -d 'Colour: auto, always or never.' -rfka ''
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap" idle-timeout' -l 'idle-timeout' -d 'End connections idle this long (capture time). The default, 660, covers RFC 5321\'s longest wait (10 minutes for a DATA block and its final reply) with a minute to spare.' -rfka ''
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap" max-memory' -l 'max-memory' -d 'Keep peak memory under about this many MiB: sets how many connections are tracked and how many bytes are buffered; what is evicted is counted in the summary.' -rfka ''
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap" max-connections' -l 'max-connections' -d 'Connections tracked at once (default: set by --max-memory, 28928 at 256).' -rfka ''
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap" max-held-bytes' -l 'max-held-bytes' -d 'Out-of-order bytes held per connection direction. (default: 1048576)' -rfka ''
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap" j jobs' -s 'j' -l 'jobs' -d 'Analyze this many -r files at once, one thread each (output as with 1). (default: the number of CPUs)' -rfka ''
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap" no-mmap' -l 'no-mmap' -d 'Read -r files through libpcap\'s stdio reader instead of mapping them into memory (slower; for a file that is being rewritten while it is read).'
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap" Z relinquish-privileges' -s 'Z' -l 'relinquish-privileges' -d 'After opening a live capture as root, switch to this user (default nobody; \'root\' keeps root).' -rfka ''
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap" version' -l 'version' -d 'Show the version.'
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_positional "smtpcap" -eq 1' -fa 'probe' -d 'Test STARTTLS on every path to a mail domain: connect to each MX address over IPv4 and IPv6, capture the connections and analyze them.'
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_positional "smtpcap" -eq 1' -fa 'compare' -d 'Compare two captures of the same SMTP traffic taken at two points (the sender and the receiving server, or both sides of a firewall).'
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_positional "smtpcap" -eq 1' -fa 'help' -d 'Show subcommand help information.'
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap probe" port' -l 'port' -d 'The port to connect to.' -rfka ''
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap probe" 4' -s '4' -d 'IPv4 only.'
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap probe" 6' -s '6' -d 'IPv6 only.'
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap probe" ehlo' -l 'ehlo' -d 'The name to send in EHLO (default: this host\'s fully qualified name).' -rfka ''
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap probe" timeout' -l 'timeout' -d 'Seconds to wait for a connection, a reply or the TLS handshake (twice this for the greeting).' -rfka ''
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap probe" json' -l 'json' -d 'Print JSON lines: the sessions, the capture summary, then a probe object.'
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap probe" w' -s 'w' -d 'Keep the captured packets in this pcap file.' -rfka ''
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap probe" i interface' -l 'interface' -s 'i' -d 'Capture on this interface (default: any).' -rfka ''
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap probe" color' -l 'color' -d 'Colour: auto, always or never.' -rfka ''
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap probe" version' -l 'version' -d 'Show the version.'
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap probe" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap compare" json' -l 'json' -d 'Print JSON lines: one object per pair or unpaired session, then a summary.'
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap compare" ports' -l 'ports' -d 'SMTP server ports (comma-separated).' -rfka ''
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap compare" implicit-tls-ports' -l 'implicit-tls-ports' -d 'Ports whose sessions are TLS from the first byte.' -rfka ''
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap compare" color' -l 'color' -d 'Colour: auto, always or never.' -rfka ''
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap compare" max-memory' -l 'max-memory' -d 'Keep peak memory of each analysis under about this many MiB.' -rfka ''
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap compare" version' -l 'version' -d 'Show the version.'
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap compare" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'smtpcap' -n '__smtpcap_should_offer_completions_for_flags_or_options "smtpcap help" version' -l 'version' -d 'Show the version.'
