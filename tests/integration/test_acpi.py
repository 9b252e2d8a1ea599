"""ACPI: the tables vsrv writes at boot (src/vmm/acpi.c, acpi-dsdt.c) and the
fixed hardware they describe (src/devices/acpi-pm.c), checked three ways that
share nothing with the VMM's structs:

- micro-guests find and read the tables as an OS does, by the spec's byte
  offsets (tests/guests/acpi-tables.c, acpi-sci.c), drive the PM registers,
  the PM timer, the SCI and the power button, and power off through S5;
- ACPICA itself (Debian's acpica-tools, as in Linux): iasl -d disassembles
  the tables as a guest finds them (vsrv run --dump-acpi) and acpiexec loads
  them and evaluates the DSDT's objects;
- this file states what the ACPI 6.3 specification and vsrv's memory map
  (src/vmm/vm.h) say each field must be."""
import os
import re
import subprocess

from test_boot import DSDT_LENGTH, acpi_bytes
from vsrvtest import VSRV, TmpDirTest, main, need, vsrv

GUESTS = os.environ.get("VSRV_GUESTS", "")
TIMEOUT = 60
RSDP = 0xe0000
LAPIC, IOAPIC = 0xfee00000, 0xfec00000
MMCONFIG = 0xe0000000
PM_BASE = 0x600                 # PM1a_EVT; PM1a_CNT +4, PM_TMR +8
SCI = 9
S5 = 5                          # the DSDT's \_S5 sleep type
HEADER = ('length={length:08x} revision={revision:02x} oem="VSRV  " oem_table="VSRVVMM " '
          'oem_revision=00000001 creator="VSRV" creator_revision=00000001')
FADT_FLAGS = 0x565              # WBINVD PROC_C1 SLP_BUTTON FIX_RTC TMR_VAL_EXT RESET_REG_SUP
BOOT_ARCH = 0x17                # LEGACY_DEVICES 8042 VGA_NOT_PRESENT PCIE_ASPM_CONTROLS
FACS = RSDP + 0x40              # after the RSDP, 64-byte aligned


def guest(name):
    return os.path.join(GUESTS, name + ".elf")


def run(name, *args):
    return subprocess.run([VSRV, "run", "--kernel", guest(name), "--test-device", *args],
                          capture_output=True, text=True, timeout=TIMEOUT,
                          stdin=subprocess.DEVNULL)


def madt_length(cpus):
    return 44 + 8 * cpus + 12 + 2 * 10 + 6


def dsdt_addr(cpus):
    """The DSDT is the last table (test_boot.acpi_bytes has the layout)."""
    return RSDP + acpi_bytes(cpus) - DSDT_LENGTH


def tables_report(cpus):
    """acpi-tables.c's whole output for --cpus cpus."""
    def hdr(sig, length, revision):
        return f"{sig} " + HEADER.format(length=length, revision=revision)
    lines = [
        f"rsdp scan={RSDP:x} zero_page={RSDP:x}",
        'rsdp oem="VSRV  " revision=02 rsdt=00000000 length=00000024',
        hdr("XSDT", 36 + 3 * 8, 1),
        "xsdt entries: FACP APIC MCFG",
        hdr("FACP", 276, 6),
        # The 32-bit FACS and DSDT fields are 0 as the spec wants when the
        # 64-bit ones are set; no SMI_CMD: always in ACPI mode.
        f"fadt firmware_ctrl=00000000 dsdt=00000000 profile=04 sci_int={SCI:04x} "
        "smi_cmd=00000000 acpi_enable=00 acpi_disable=00",
        f"fadt pm1a_evt={PM_BASE:08x} pm1b_evt=00000000 pm1a_cnt={PM_BASE + 4:08x} "
        f"pm1b_cnt=00000000 pm2_cnt=00000000 pm_tmr={PM_BASE + 8:08x} gpe0=00000000 "
        "gpe1=00000000",
        # C2/C3 latencies over 100/1000: not supported; century at CMOS 0x32.
        "fadt pm1_evt_len=04 pm1_cnt_len=02 pm2_cnt_len=00 pm_tmr_len=04 gpe0_len=00 "
        f"gpe1_len=00 c2_lat=0065 c3_lat=03e9 century=32 boot_arch={BOOT_ARCH:04x} "
        f"flags={FADT_FLAGS:08x}",
        # The reset register: 0xcf9 (system I/O, 8 bits, byte access) = 6.
        "fadt reset_reg=01:08:00:01:cf9 reset_value=06 minor=03 "
        f"x_facs={FACS:x} x_dsdt={dsdt_addr(cpus):x}",
        # The X blocks: system I/O, bit widths 32/16/32 (the lengths above),
        # word, word and dword access; no GPE block.
        f"fadt x_pm1a_evt=01:20:00:02:{PM_BASE:x} x_pm1a_cnt=01:10:00:02:{PM_BASE + 4:x} "
        f"x_pm_tmr=01:20:00:03:{PM_BASE + 8:x} x_gpe0=00:00:00:00:0",
        "FACS length=00000040 hardware_signature=00000000 waking_vector=00000000 "
        "global_lock=00000000 flags=00000000 version=02",
        hdr("DSDT", DSDT_LENGTH, 2),
        f"dsdt s5_slp_typ={S5}",
        hdr("APIC", madt_length(cpus), 5),
        f"madt lapic_addr={LAPIC:08x} flags=00000001",
    ]
    # APIC ids 0..N-1 (the MP table's), the IOAPIC's id N.
    lines += [f"lapic uid={i:02x} apic_id={i:02x} flags=00000001" for i in range(cpus)]
    lines += [
        f"ioapic id={cpus:02x} addr={IOAPIC:08x} gsi_base=00000000",
        # IRQ0 on GSI 0 (KVM's default routing), the SCI level, active high.
        "iso bus=00 irq=00 gsi=00000000 flags=0000",
        f"iso bus=00 irq={SCI:02x} gsi={SCI:08x} flags=000d",
        "lapic_nmi uid=ff flags=0000 lint=01",
        hdr("MCFG", 60, 1),
        f"mcfg base={MMCONFIG:x} segment=0000 buses=00-00",
        # SCI_EN reads 1 whatever is written; the enable bits that exist:
        # TMR GBL PWRBTN SLPBTN RTC PCIEXP_WAKE_DIS.
        "pm1 sts=0000 cnt_sci_en=0001 cnt_zero=0001 en_all=4721 en_none=0000",
        "pm_tmr monotonic=1 rate_ok=1",
        "result ok",
    ]
    return "\n".join(lines) + "\n"


class Guests(TmpDirTest):
    def test_tables(self):
        # Found by the scan and the zero page, every checksum right, every
        # table in reserved memory, powered off through S5 (status 0).
        for cpus in (1, 3, 16):
            p = run("acpi-tables", "--cpus", str(cpus))
            self.assertEqual((p.returncode, p.stdout, p.stderr), (0, tables_report(cpus), ""),
                             cpus)

    def test_power_button(self):
        p = run("acpi-sci", "--cpus", "2")
        want = [
            f"sci irq={SCI} gsi={SCI} flags=000d pm1a_evt={PM_BASE:04x}",
            # A press the guest has not enabled: latched, no SCI.
            "disabled: scis=0 sts=0100",
            # Enabling raises the level SCI; clearing PWRBTN_STS ends it.
            "enabled: events=1 sts=0100 after=0000 quiet=1 remote_irr=0",
            "ready",
            "pressed: events=2 sts=0100 after=0000 quiet=1 remote_irr=0",
            # The MADT's IRQ0 override (to GSI 0) is where the PIT arrives.
            "pit pins=00000001 irq0_gsi=0",
            "result ok",
        ]
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, "\n".join(want) + "\n", ""))


# The PCI root's _PRT as iasl decompiles it: INTA (pin 0) of slot s on GSI
# 16 + s % 8 (source 0: a GSI, no link device), the MP table's wiring.
PRT_ASL = ",\n\n".join(
    "                Package (0x04)\n                {\n"
    f"                    {'0xFFFF' if s == 0 else f'0x{s << 16 | 0xFFFF:08X}'},\n"
    "                    Zero,\n                    Zero,\n"
    f"                    0x{16 + s % 8:02X}\n                }}" for s in range(32)) + "\n"

# The DSDT as iasl decompiles it, comments left out.
DSDT_ASL = """\
DefinitionBlock ("", "DSDT", 2, "VSRV  ", "VSRVVMM ", 0x00000001)
{
    Scope (\\_SB)
    {
        Device (PCI0)
        {
            Name (_HID, EisaId ("PNP0A08"))
            Name (_CID, EisaId ("PNP0A03"))
            Name (_UID, Zero)
            Name (_CRS, ResourceTemplate ()
            {
                WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,
                    0x0000,
                    0x0000,
                    0x0000,
                    0x0000,
                    0x0001,
                    ,, )
                IO (Decode16,
                    0x0CF8,
                    0x0CF8,
                    0x01,
                    0x08,
                    )
                WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,
                    0x0000,
                    0x0000,
                    0x0CF7,
                    0x0000,
                    0x0CF8,
                    ,, , TypeStatic, DenseTranslation)
                WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,
                    0x0000,
                    0x0D00,
                    0xFFFF,
                    0x0000,
                    0xF300,
                    ,, , TypeStatic, DenseTranslation)
                DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,
                    0x00000000,
                    0xC0000000,
                    0xDFFFFFFF,
                    0x00000000,
                    0x20000000,
                    ,, , AddressRangeMemory, TypeStatic)
            })
            Name (_PRT, Package (0x20)
            {
""" + PRT_ASL + """            })
        }

        Device (MBRD)
        {
            Name (_HID, EisaId ("PNP0C02"))
            Name (_UID, Zero)
            Name (_CRS, ResourceTemplate ()
            {
                Memory32Fixed (ReadWrite,
                    0xE0000000,
                    0x00100000,
                    )
            })
        }

        Device (COM1)
        {
            Name (_HID, EisaId ("PNP0501"))
            Name (_UID, One)
            Name (_CRS, ResourceTemplate ()
            {
                IO (Decode16,
                    0x03F8,
                    0x03F8,
                    0x01,
                    0x08,
                    )
                IRQNoFlags ()
                    {4}
            })
        }

        Device (RTC)
        {
            Name (_HID, EisaId ("PNP0B00"))
            Name (_CRS, ResourceTemplate ()
            {
                IO (Decode16,
                    0x0070,
                    0x0070,
                    0x01,
                    0x02,
                    )
                IRQNoFlags ()
                    {8}
            })
        }

        Device (KBD)
        {
            Name (_HID, EisaId ("PNP0303"))
            Name (_CRS, ResourceTemplate ()
            {
                IO (Decode16,
                    0x0060,
                    0x0060,
                    0x01,
                    0x01,
                    )
                IO (Decode16,
                    0x0064,
                    0x0064,
                    0x01,
                    0x01,
                    )
                IRQNoFlags ()
                    {1}
            })
        }
    }

    Name (\\_S5, Package (0x04)
    {
        0x05,
        0x05,
        Zero,
        Zero
    })
}
"""


def common_header(sig, length, revision):
    return {
        (0, "Signature"): f'"{sig}"', (4, "Table Length"): f"{length:08X}",
        (8, "Revision"): f"{revision:02X}", (10, "Oem ID"): '"VSRV  "',
        (16, "Oem Table ID"): '"VSRVVMM "', (24, "Oem Revision"): "00000001",
        (28, "Asl Compiler ID"): '"VSRV"', (32, "Asl Compiler Revision"): "00000001",
    }


def gas(offset, space, width, access, address):
    return {(offset, "Space ID"): f"{space:02X}", (offset + 1, "Bit Width"): f"{width:02X}",
            (offset + 2, "Bit Offset"): "00", (offset + 3, "Encoded Access Width"): f"{access:02X}",
            (offset + 4, "Address"): f"{address:016X}"}


class Acpica(TmpDirTest):
    """The tables through ACPICA's tools, dumped as a guest finds them."""

    CPUS = 3

    def setUp(self):
        super().setUp()
        need("iasl", "acpiexec")
        p = vsrv("run", "--kernel", guest("hello64"), "--cpus", str(self.CPUS), "--dry-run",
                 "--dump-acpi", self.dir)
        self.assertEqual(p.stderr, "")
        self.files = sorted(os.listdir(self.dir))

    def read(self, name):
        with open(self.p(name), "rb") as f:
            return f.read()

    def disassemble(self, name):
        """iasl -d's output for one table: {(offset, field): value} of the
        data tables' lines, and the whole text."""
        p = subprocess.run(["iasl", "-d", name + ".dat"], cwd=self.dir, capture_output=True,
                           text=True, timeout=TIMEOUT)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertNotIn("checksum", (p.stdout + p.stderr).lower().replace(
            "checksum :", ""), name)
        with open(self.p(name + ".dsl")) as f:
            text = f.read()
        self.assertNotIn("Incorrect", text, name)
        fields = {}
        for m in re.finditer(r'^\[([0-9A-F]{3})h \d{4} +\d+\] +(.+?) : ("[^"]*"|\S+)', text,
                             re.M):
            key = (int(m.group(1), 16), m.group(2).strip())
            self.assertNotIn(key, fields, name)
            fields[key] = m.group(3)
        return fields, text

    def assertFields(self, fields, want, name):
        """Every field as wanted; every field not named is zero."""
        for key, value in sorted(fields.items()):
            if key in want:
                self.assertEqual(value, want[key], f"{name} {key}")
            elif key[1] != "Checksum" and value != "[Generic":  # a GAS heading
                self.assertRegex(value, r"^0+$", f"{name} {key} should be 0")
        self.assertEqual(set(want) - set(fields), set(), name)

    def test_files(self):
        self.assertEqual(self.files, ["apic.dat", "dsdt.dat", "facp.dat", "facs.dat",
                                      "mcfg.dat", "rsdp.dat", "xsdt.dat"])
        # Checksums by the spec's rule (the FACS has none): iasl checks them
        # too, below; the RSDP (which iasl does not take alone) here only.
        for name in self.files:
            data = self.read(name)
            if name == "rsdp.dat":
                self.assertEqual(data[:8], b"RSD PTR ")
                self.assertEqual((sum(data[:20]) % 256, sum(data) % 256, data[15],
                                  int.from_bytes(data[16:20], "little"),
                                  int.from_bytes(data[20:24], "little")),
                                 (0, 0, 2, 0, 36))
            elif name != "facs.dat":
                self.assertEqual(sum(data) % 256, 0, name)
                self.assertEqual(len(data), int.from_bytes(data[4:8], "little"), name)

    def test_fadt(self):
        fields, _ = self.disassemble("facp")
        want = common_header("FACP", 276, 6)
        want.update({
            (45, "PM Profile"): "04", (46, "SCI Interrupt"): f"{SCI:04X}",
            (56, "PM1A Event Block Address"): f"{PM_BASE:08X}",
            (64, "PM1A Control Block Address"): f"{PM_BASE + 4:08X}",
            (76, "PM Timer Block Address"): f"{PM_BASE + 8:08X}",
            (88, "PM1 Event Block Length"): "04", (89, "PM1 Control Block Length"): "02",
            (91, "PM Timer Block Length"): "04",
            (96, "C2 Latency"): "0065", (98, "C3 Latency"): "03E9",
            (108, "RTC Century Index"): "32",
            (109, "Boot Flags (decoded below)"): f"{BOOT_ARCH:04X}",
            (112, "Flags (decoded below)"): f"{FADT_FLAGS:08X}",
            (128, "Value to cause reset"): "06", (131, "FADT Minor Revision"): "03",
            (132, "FACS Address"): f"{FACS:016X}",
            (140, "DSDT Address"): f"{dsdt_addr(self.CPUS):016X}",
        })
        want.update(gas(116, 1, 8, 1, 0xcf9))
        want.update(gas(148, 1, 32, 2, PM_BASE))
        want.update(gas(172, 1, 16, 2, PM_BASE + 4))
        want.update(gas(208, 1, 32, 3, PM_BASE + 8))
        self.assertFields(fields, want, "FACP")
        _, text = self.disassemble("facp")
        # The decoded flags, in iasl's words.
        for line in ("Control Method Power Button (V1) : 0", "32-bit PM Timer (V1) : 1",
                     "Hardware Reduced (V5) : 0", "8042 Present on ports 60/64 (V2) : 1",
                     "Reset Register Supported (V2) : 1"):
            self.assertRegex(text, r"\n +" + re.escape(line) + "\n")

    def test_madt(self):
        fields, text = self.disassemble("apic")
        want = common_header("APIC", madt_length(self.CPUS), 5)
        want.update({(36, "Local Apic Address"): f"{LAPIC:08X}",
                     (40, "Flags (decoded below)"): "00000001"})
        at = 44
        for i in range(self.CPUS):
            want.update({(at, "Subtable Type"): "00", (at + 1, "Length"): "08",
                         (at + 2, "Processor ID"): f"{i:02X}", (at + 3, "Local Apic ID"): f"{i:02X}",
                         (at + 4, "Flags (decoded below)"): "00000001"})
            at += 8
        want.update({(at, "Subtable Type"): "01", (at + 1, "Length"): "0C",
                     (at + 2, "I/O Apic ID"): f"{self.CPUS:02X}",
                     (at + 4, "Address"): f"{IOAPIC:08X}"})
        at += 12
        for irq, flags in ((0, 0), (SCI, 0xd)):
            want.update({(at, "Subtable Type"): "02", (at + 1, "Length"): "0A",
                         (at + 3, "Source"): f"{irq:02X}", (at + 4, "Interrupt"): f"{irq:08X}",
                         (at + 8, "Flags (decoded below)"): f"{flags:04X}"})
            at += 10
        want.update({(at, "Subtable Type"): "04", (at + 1, "Length"): "06",
                     (at + 2, "Processor ID"): "FF", (at + 5, "Interrupt Input LINT"): "01"})
        self.assertFields(fields, want, "APIC")
        # The SCI's override: active high (1), level (3).
        self.assertIn("Source : 09\n[05Eh 0094   4]                    Interrupt : 00000009\n"
                      "[062h 0098   2]        Flags (decoded below) : 000D\n"
                      "                                    Polarity : 1\n"
                      "                                Trigger Mode : 3\n",
                      re.sub(r" +Source", " Source", text))

    def test_mcfg_xsdt_facs(self):
        fields, _ = self.disassemble("mcfg")
        want = common_header("MCFG", 60, 1)
        want.update({(44, "Base Address"): f"{MMCONFIG:016X}", (54, "Start Bus Number"): "00",
                     (55, "End Bus Number"): "00"})
        self.assertFields(fields, want, "MCFG")
        fields, _ = self.disassemble("xsdt")
        entries = [int(v, 16) for (off, k), v in sorted(fields.items())
                   if k.startswith("ACPI Table Address")]
        self.assertEqual(len(entries), 3)
        for e in entries:
            self.assertTrue(RSDP <= e < 0x100000 and e % 16 == 0, hex(e))
        fields, _ = self.disassemble("facs")
        self.assertEqual((fields[(0, "Signature")], fields[(4, "Length")],
                          fields[(32, "Version")]), ('"FACS"', "00000040", "02"))

    def test_dsdt(self):
        _, text = self.disassemble("dsdt")
        body = text[text.index("DefinitionBlock"):]
        body = re.sub(r" ?/\*.*?\*/", "", body)
        body = re.sub(r"\s*//.*", "", body)
        body = re.sub(r"[ \t]+\n", "\n", body)
        self.assertEqual(body.strip() + "\n", DSDT_ASL)
        self.assertEqual(len(self.read("dsdt.dat")), DSDT_LENGTH)

    def test_acpiexec(self):
        # ACPICA's interpreter loads the tables (as Linux would) and
        # evaluates the objects an OS asks for.
        names = [n for n in self.files if n != "rsdp.dat" and n != "xsdt.dat"]
        cmds = ["evaluate \\_S5"] + [f"evaluate \\_SB.{d}._CRS"
                                     for d in ("PCI0", "MBRD", "COM1", "RTC", "KBD")]
        p = subprocess.run(["acpiexec", "-b", "; ".join(cmds), *names], cwd=self.dir,
                           capture_output=True, text=True, timeout=TIMEOUT)
        out = p.stdout + p.stderr
        self.assertEqual(p.returncode, 0, out)
        # acpiexec's own GPE exercises fail without a GPE block: not ours.
        trouble = [line for line in out.splitlines()
                   if re.search(r"Error|Warning|AE_", line) and "aetests" not in line]
        self.assertEqual(trouble, [], out)
        self.assertIn("Evaluation of \\_S5 returned object", out)
        self.assertIn("[Package] Contains 4 Elements:\n"
                      f"    [Integer] = {S5:016X}\n    [Integer] = {S5:016X}\n"
                      "    [Integer] = 0000000000000000\n    [Integer] = 0000000000000000\n", out)
        self.assertEqual(len(re.findall(r"Evaluation of \\_SB\.\w+\._CRS returned object", out)),
                         5, out)
        self.assertIn("ACPI: No outstanding allocations", out)

    def test_dump_errors(self):
        missing = self.p("missing")
        p = vsrv("run", "--kernel", guest("hello64"), "--dry-run", "--dump-acpi", missing,
                 check=False)
        self.assertEqual((p.returncode, p.stdout, p.stderr),
                         (1, "", f"vsrv: --dump-acpi: {missing}/rsdp.dat: "
                          "No such file or directory\n"))


if __name__ == "__main__":
    main()
