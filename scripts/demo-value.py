#!/usr/bin/env python3
"""Print the value `qsfs-cache fill` writes for index I and SIZE bytes."""
import sys
i, size = int(sys.argv[1]), int(sys.argv[2])
sys.stdout.buffer.write(bytes(((i * 131 + j // 7) & 0xFF) for j in range(size)))
