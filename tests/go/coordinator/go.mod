module gobuildkey.test/coordinator

go 1.19
