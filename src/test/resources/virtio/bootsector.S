# The boot sector of VhostUserQemuBiosTest (bootsector.bin), built with:
#   as --32 -o boot.o bootsector.S && ld -m elf_i386 -Ttext 0x7c00 --oformat binary -o bootsector.bin boot.o
# SeaBIOS loads it through the virtio-blk disk; it writes itself to sector 1 (int 13h), reads that back, compares,
# and prints the outcome on the serial port.
.code16
.globl _start
_start:
    cli
    xor %ax, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $0x7c00, %sp
    sti
    cld
    mov %dl, drive
    mov $0x0301, %ax        # write 1 sector
    mov $0x0002, %cx        # cylinder 0, sector 2 (LBA 1)
    xor %dh, %dh
    mov $0x7c00, %bx        # this sector
    int $0x13
    jc fail
    mov $0x0201, %ax        # read it back
    mov $0x0002, %cx
    xor %dh, %dh
    mov drive, %dl
    mov $0x8000, %bx
    int $0x13
    jc fail
    mov $0x7c00, %si
    mov $0x8000, %di
    mov $256, %cx
    repe cmpsw
    jne fail
    mov $ok, %si
    jmp print
fail:
    mov $bad, %si
print:
    mov $0x3f8, %dx
1:  lodsb
    test %al, %al
    jz 2f
    out %al, %dx
    jmp 1b
2:  hlt
    jmp 2b
drive: .byte 0
ok:  .asciz "qcow2-loom vhost-user-blk: sector written and read back\r\n"
bad: .asciz "qcow2-loom vhost-user-blk: disk error\r\n"
. = _start + 510
.byte 0x55, 0xaa
