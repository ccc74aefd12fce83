<?php header("Status: abc"); echo "x";
