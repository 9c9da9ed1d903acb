#!/bin/sh
echo "@GREETING@, @NAME@! (built by $GREETER, running as $(id -un) in $(pwd))"
