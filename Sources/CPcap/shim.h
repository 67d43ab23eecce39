#ifndef SMTPCAP_CPCAP_SHIM_H
#define SMTPCAP_CPCAP_SHIM_H
#include <pcap/pcap.h>
#include <stdio.h>
#endif
