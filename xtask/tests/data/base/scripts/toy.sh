#!/bin/sh
# Build the toy.
cc -c mm/toy.c -o toy.o
