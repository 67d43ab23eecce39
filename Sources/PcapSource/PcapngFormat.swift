/// The pcapng format as libpcap 1.10 reads it (sf-pcapng.c): block types, limits, the
/// interface table's entries and their time stamp conversion, link types and snapshot
/// lengths. No pointers: `PcapngRecords.swift` is the kernel that reads the mapping.
extension PcapngRecords {
    static let sectionHeader: UInt32 = 0x0A0D_0D0A
    static let byteOrderMagic: UInt32 = 0x1A2B_3C4D
    static let interfaceDescription: UInt32 = 1
    static let packetBlock: UInt32 = 2
    static let simplePacket: UInt32 = 3
    static let enhancedPacket: UInt32 = 6
    /// libpcap's largest first Section Header Block (`BT_SHB_INSANE_MAX`).
    static let maximumFirstSection: UInt32 = 1 << 20
    /// libpcap's block size limit before the first interface (`INITIAL_MAX_BLOCKSIZE`).
    static let initialMaximumBlock: UInt32 = 16 << 20
    /// Interfaces over all sections; past it the file ends with an error (libpcap's own
    /// limit is 2^31, with 40 bytes each that would be 80 GiB).
    static let maximumInterfaces = 1 << 18
    /// Bytes of an if_name kept; names past `maximumNameBytes` in all are not kept.
    static let maximumNameLength = 256
    static let maximumNameBytes = 4 << 20
    static let releaseStep = 1 << 20

    /// What a packet needs of its interface, in 40 bytes: the table of a file with a million
    /// interfaces stays at tens of MiB.
    struct Interface {
        /// Time stamp units per second (if_tsresol).
        var resolution: UInt64
        /// The decimal factor between `resolution` and nanoseconds.
        var factor: UInt64
        /// Seconds added to every time stamp (if_tsoffset).
        var offset: Int64
        /// The snapshot length as libpcap adjusts it (0 and oversize lengths: the maximum).
        var snapshot: UInt32
        var nameStart: UInt32
        var linkType: UInt16
        var nameLength: UInt16
        var scale: Scale

        /// libpcap's choice of conversion for the nanoseconds it was asked for.
        mutating func chooseScale(binary: Bool) {
            let nano: UInt64 = 1_000_000_000
            if resolution == nano {
                scale = .none
            } else if binary {
                scale = .binary
            } else if resolution > nano {
                scale = .downDecimal
                factor = resolution / nano
            } else {
                scale = .upDecimal
                factor = nano / resolution
            }
        }

        /// A time stamp in units of `resolution` as libpcap converts it: seconds plus the
        /// offset, the rest scaled to nanoseconds, in 64 bits that wrap, then cut to
        /// `time_t` and `int`.
        @inline(__always)
        func time(_ stamp: UInt64) -> (seconds: Int64, nanoseconds: Int32) {
            let seconds = stamp / resolution &+ UInt64(bitPattern: offset)
            var fraction = stamp % resolution
            switch scale {
            case .none: break
            case .upDecimal: fraction = fraction &* factor
            case .downDecimal: fraction = fraction / factor
            case .binary: fraction = (fraction &* 1_000_000_000) / resolution
            }
            return (Int64(bitPattern: seconds), Int32(truncatingIfNeeded: fraction))
        }
    }

    /// libpcap's conversion of the sub-second part to nanoseconds (its two binary cases do
    /// the same sum).
    enum Scale: UInt8 {
        case none, upDecimal, downDecimal, binary
    }

    struct Failure: Error {
        var message: String
    }

    // MARK: - Time stamps

    // MARK: - Link types

    /// libpcap's `linktype_to_dlt` on Linux: the LINKTYPE values whose DLT differs.
    static func dlt(linkType: UInt16) -> Int32 {
        switch linkType {
        case 100: 11
        case 101: 12
        case 102: 15
        case 103: 16
        case 106: 19
        default: Int32(linkType)
        }
    }

    /// libpcap's `max_snaplen_for_dlt`.
    static func maximumSnapshot(_ dlt: Int32) -> UInt32 {
        switch dlt {
        case 231: 134_217_728  // D-Bus
        case 249: 1_048_576    // USBPcap
        case 279: 8_388_608    // EBHSCR
        default: 262_144
        }
    }

    /// libpcap's `pcap_adjust_snapshot`.
    static func adjustedSnapshot(_ dlt: Int32, _ snaplen: UInt32) -> UInt32 {
        let maximum = maximumSnapshot(dlt)
        return snaplen == 0 || snaplen > maximum ? maximum : snaplen
    }
}
