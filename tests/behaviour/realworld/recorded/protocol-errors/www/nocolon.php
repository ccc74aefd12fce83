<?php header("X-Trace a b"); echo "x";
